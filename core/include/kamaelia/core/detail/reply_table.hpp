// Private: where the replies of ask() land (see kamaelia/core/service.hpp).
//
// An asker owns a reply slot in its coroutine frame and opens an entry here;
// the request carries a ticket (table, index, generation). Every reply, from
// any thread, goes through deliver(): the ONE place a reply path passes, so a
// hop to another scheduler later is a change here only. An asker that goes
// away closes its entry (the generation moves on), so a late reply finds a
// stale ticket and is dropped: nothing points into a dead frame.
//
// Entries are recycled through a free list: no allocation per request once
// the table has grown to the number of asks in flight. A reply from the
// asker's own thread wakes the asker at once; a reply from another thread is
// queued and the scheduler is posted to once per batch.
#pragma once

#include <kamaelia/core/fwd.hpp>

#include <coroutine>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace kamaelia::detail {

class reply_table;

// See kamaelia::reply_batch (service.hpp): the wake-ups held back on this thread.
struct reply_batch_state {
    reply_batch_state* outer = nullptr;
    std::vector<std::shared_ptr<reply_table>> tables; // each posts once when the batch ends
};

// Moves the reply (a result<Rep>*) into the slot (an optional<result<Rep>>*).
using reply_complete_fn = void (*)(void* slot, void* value) noexcept;

struct reply_ticket {
    std::shared_ptr<reply_table> table; // kept alive by tickets in flight (a request may outlive a scheduler)
    std::uint32_t index = 0;
    std::uint32_t gen = 0;
    explicit operator bool() const noexcept { return table != nullptr; }
};

class reply_table : public std::enable_shared_from_this<reply_table> {
public:
    // Scheduler thread (the asker's).
    reply_ticket open(component& asker, void* slot, reply_complete_fn fn);
    void close(const reply_ticket& t) noexcept;
    bool ready(const reply_ticket& t);
    // The asker is about to sleep until signal_external(): a reply then
    // signals it. False when the reply is already there (do not sleep).
    bool start_waiting(const reply_ticket& t);
    // The asker woke: true when its reply is there.
    bool stop_waiting(const reply_ticket& t) noexcept;

    // Waiting for room in a service on another scheduler (service_port):
    // arm_room() before each attempt, so a poke() that comes before the
    // asker sleeps is kept; start_waiting_room() is false when one came;
    // stop_waiting_room() says whether the wake-up was a poke; disarm_room()
    // once the request is in (a late poke is then ignored).
    void arm_room(const reply_ticket& t);
    bool start_waiting_room(const reply_ticket& t);
    bool stop_waiting_room(const reply_ticket& t) noexcept;
    void disarm_room(const reply_ticket& t) noexcept;
    // Any thread: room appeared. Wakes the asker like a reply from that
    // thread does (batched: one post per batch per scheduler).
    void poke(const reply_ticket& t) noexcept;

    // Any thread. The first delivery to an open entry wins; later ones and
    // those to closed entries are dropped (the value stays with the caller).
    bool deliver(const reply_ticket& t, void* value) noexcept;

    // The scheduler goes: replies after this are dropped.
    void detach() noexcept;

    // Posts run_ready() to the scheduler now: at the end of a reply_batch
    // that held this table's post back, or from post_ready() outside one.
    // Under post_m_, which detach() also takes, so the scheduler cannot go
    // meanwhile; m_ stays free for the woken scheduler's run_ready().
    void post_held() noexcept;

    // Entries open now (for tests and introspection).
    std::size_t open_count();

private:
    struct entry {
        std::uint32_t gen = 1;
        std::uint32_t next_free = 0;
        void* slot = nullptr;
        reply_complete_fn fn = nullptr;
        component* asker = nullptr;
        std::thread::id owner;
        bool open = false;
        bool ready = false;
        bool waiting = false;
        bool room = false;  // armed for poke()
        bool poked = false; // room appeared since arm_room()
    };
    struct woken {
        std::uint32_t index, gen;
    };
    void run_ready() noexcept; // scheduler thread: wake askers whose replies came from elsewhere
    // With m_ held: wake a waiting asker now (its own thread) or queue it and
    // say whether a post is owed (another thread; once per batch).
    bool wake_locked(entry& e, std::uint32_t index) noexcept;
    void post_ready() noexcept; // the owed post: now, or at the end of this thread's reply_batch

    std::mutex m_;
    std::mutex post_m_; // held while posting to sched_ (and by detach); taken before m_
    std::vector<entry> entries_;
    std::uint32_t free_ = UINT32_MAX;
    std::size_t open_ = 0;
    scheduler* sched_ = nullptr; // set by open() (m_), cleared by detach() (post_m_ and m_)
    std::vector<woken> woken_;
    bool post_pending_ = false;
};

} // namespace kamaelia::detail
