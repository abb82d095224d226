// Private: the bridge between a scheduler and one foreign side (the thread of
// a threaded_component, or the outside code holding a handle).
//
// The foreign side never touches a box. It talks to bounded queues under one
// mutex; the scheduler side is a proxy component whose pump moves messages
// between those queues and its real boxes. Wake-ups:
//  - foreign → proxy: a posted function (scheduler::post) drops a token into
//    the proxy's "_wake" inbox. At most one post is in flight (wake_posted),
//    cleared by the posted function before it looks, so none is lost. The
//    foreign side only asks when the proxy could be waiting for it: a queue
//    towards the scheduler went empty→non-empty, a queue from the scheduler
//    went full→not-full, or the foreign side ended.
//  - proxy → foreign: a condition variable, notified only when someone waits.
//
// Ordering: "data before control". Inbound, a control-class box ("control",
// or "signal" of a wrapped component) moves only in a pass where every data
// box was drained completely. Outbound, every item carries a sequence number
// and a control-class item waits until no older data item is queued or in
// flight, so producer_finished never overtakes the data it ends.
#pragma once

#include <kamaelia/core/box.hpp>
#include <kamaelia/core/component.hpp>
#include <kamaelia/core/message.hpp>
#include <kamaelia/core/scheduler.hpp>

#include <chrono>
#include <condition_variable>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace kamaelia::detail {

struct bridge_item {
    message msg;
    std::uint64_t seq = 0;
    bool forced = false; // delivered ignoring the receiver's bound (end notices)
};

struct bridge_queue {
    std::string name; // the box name the foreign side uses
    std::uint32_t hash;
    bool last; // control-class: ordered after the data boxes
    std::size_t limit;
    std::deque<bridge_item> items;

    bridge_queue(std::string n, bool is_last, std::size_t lim)
        : name(std::move(n)),
          hash(box_name::fnv1a(name)),
          last(is_last),
          limit(lim) {}
    // Move-only, so vectors of queues move rather than try to copy messages.
    bridge_queue(bridge_queue&&) = default;
    bridge_queue& operator=(bridge_queue&&) = default;
    bridge_queue(const bridge_queue&) = delete;
    bridge_queue& operator=(const bridge_queue&) = delete;

    bool full() const noexcept { return items.size() >= limit; }
};

// What the posted wake-up drops into the proxy's "_wake" inbox.
struct bridge_wake_token {};

class thread_bridge : public std::enable_shared_from_this<thread_bridge> {
public:
    std::mutex mutex;
    std::condition_variable cv;             // the foreign side waits here
    std::vector<bridge_queue> to_foreign;   // real inboxes → foreign side
    std::vector<bridge_queue> from_foreign; // foreign side → real outboxes

    // ---- guarded by mutex ----
    scheduler* sched = nullptr; // where wake-ups go; null once the scheduler side is gone
    bool wake_posted = false;
    bool closed = false;       // the scheduler side has stopped or ended
    bool foreign_done = false; // the thread returned / the handle was dropped
    std::exception_ptr error;  // what the thread threw
    std::string error_text;    // why the wrapped component failed (handles)
    std::uint64_t next_seq = 0;
    std::uint32_t waiters = 0;  // foreign threads blocked on cv
    bool shutdown_seen = false; // thread side: an end notice was taken from control
    ipc_kind shutdown_kind = ipc_kind::producer_finished;

    // ---- scheduler thread only ----
    inbox* wake_box = nullptr; // the proxy's "_wake" inbox while its frame lives

    // The thread of a threaded_component (joined by whoever stops it).
    std::thread thread;

    bridge_queue* find(std::vector<bridge_queue>& v, box_name b) noexcept {
        for (auto& q : v)
            if (q.hash == b.hash && q.name == b.name) return &q;
        return nullptr;
    }
    // bad_box naming `who` when the box has no queue.
    bridge_queue& in_queue(box_name b, const std::string& who);
    bridge_queue& out_queue(box_name b, const std::string& who);

    // Asks the proxy to look at the queues (call with the mutex held).
    void wake_proxy_locked();
    // Releases `lk`, then wakes the foreign waiters there were (if `changed`).
    // Notifying after the unlock spares the woken thread blocking at once on
    // the mutex we still held: two futex calls and a context switch a wake
    // when both threads share a core.
    void unlock_and_notify(std::unique_lock<std::mutex>& lk, bool changed) {
        bool wake = changed && waiters != 0;
        lk.unlock();
        if (wake) cv.notify_all();
    }
    // Blocks on cv until `ready()` or the deadline; false on timeout.
    template <class Pred>
    bool wait_locked(std::unique_lock<std::mutex>& lk, duration timeout, Pred ready) {
        ++waiters;
        bool ok = true;
        if (timeout == duration::max()) {
            cv.wait(lk, ready);
        } else {
            ok = cv.wait_until(lk, clock_type::now() + timeout, ready);
        }
        --waiters;
        return ok;
    }

    // Adds an item for the scheduler side, waking the proxy on empty→non-empty.
    void push_out_locked(bridge_queue& q, message m, bool forced);
    // Takes the front item for the foreign side, waking the proxy on full→not-full.
    message pop_in_locked(bridge_queue& q);

    // Scheduler thread: the posted half of wake_proxy_locked().
    void on_wake();
};

// The scheduler side of a bridge: lives in the proxy's coroutine frame (so
// parked sends are withdrawn when the frame goes).
class bridge_pump {
public:
    bridge_pump(component& self, std::shared_ptr<thread_bridge> b, inbox& wake_box);
    ~bridge_pump();
    bridge_pump(const bridge_pump&) = delete;
    bridge_pump& operator=(const bridge_pump&) = delete;

    // Routes; add every route before the first step().
    void add_inbound(inbox& real, std::size_t queue, bool last);
    void add_outbound(std::string outbox_name, std::size_t queue, bool last);

    // One pass: wake tokens, then inbound, then outbound, as far as possible.
    void step();
    // Inbound only, ignoring the queue bounds (the last pass before ending).
    void flush_inbound();
    // Nothing queued or in flight towards the real outboxes.
    bool outbound_idle();

    struct wait_awaiter {
        bridge_pump* p;
        bool children; // also wake when a child finishes (handle proxies)
        bool await_ready() const noexcept;
        void await_suspend(std::coroutine_handle<> h) noexcept;
        void await_resume() const noexcept {}
    };
    // Sleeps until a wake token, new data on an inbox that is not stalled, room
    // for a parked send, or (children) a child finishing.
    wait_awaiter wait(bool children = false) noexcept { return {this, children}; }

private:
    struct in_route {
        inbox* real;
        std::size_t q;
        bool last;
    };
    struct out_route {
        std::string name;
        std::size_t q;
        bool last;
        std::optional<component::send_awaiter> pending; // a send waiting for room
        bool registered = false;                        // parked in the target inbox
        std::uint64_t pending_seq = 0;
    };

    void move_in(in_route& r, bool& stalled, bool& moved, bool ignore_limit);
    bool settle_pending(out_route& r); // false while it is still parked
    bool submit(out_route& r, message m, std::uint64_t seq);
    bool older_data_waiting(std::uint64_t seq) const; // mutex held

    component& self_;
    std::shared_ptr<thread_bridge> b_;
    inbox& wake_;
    std::vector<in_route> ins_;
    std::vector<out_route> outs_; // never resized once a send may be parked
};

} // namespace kamaelia::detail
