// The bulletin board every session shares: its settings, the services its
// sessions ask (the store behind one database thread, PBKDF2 on another:
// service.hpp; the KDF service keeps the login throttle) and the count of
// open sessions.
//
//   auto b = bbs::board::open(sched, "var/bbs.sqlite", settings);  // services started
//   auto r = co_await ask(b->store_service(), std::move(job));     // from a session's stage
//
// Sessions never touch the store themselves: they ask the store service
// and resume with its answer, which comes only once the job's transaction
// has committed. In tests the services can run inline, as ordinary
// components on the scheduler's thread (board::inline_board), which keeps
// stage tests deterministic.
#pragma once

#include <kamaelia/bbs/service.hpp>
#include <kamaelia/bbs/store.hpp>
#include <kamaelia/core/component.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>

namespace kamaelia {
class scheduler;
class service_directory;
} // namespace kamaelia

namespace kamaelia::bbs {

struct settings {
    std::uint32_t kdf_iterations = default_kdf_iterations;
    std::size_t max_sessions = 1000;                    // beyond it a newcomer is told the board is full
    duration idle_timeout = std::chrono::minutes(10);   // no input for this long ends a session
    std::size_t max_line = 1000;                        // longest input line the board takes (bytes)
    std::size_t max_subject = 200;                      // bytes
    std::size_t max_body = 64 * 1024;                   // bytes of a message body
    unsigned attempts_per_session = 3;                  // failed logins before a connection is closed
    unsigned max_failures = 5;                          // failed logins for one name from one address ...
    duration failure_window = std::chrono::minutes(15); // ... within this long lock it for this long
    std::size_t max_throttled = 4096;                   // (name, address) pairs the throttle remembers at most
    std::size_t connection_queue = 1000; // jobs that may wait for a PostgreSQL connection (store_service)
};

class board {
public:
    // Starts the store and KDF services on `s` (each on a thread of its own,
    // registered under store_service_name and kdf_service_name) behind the
    // store at `where` (a SQLite file or a postgresql:// URL: open_store.hpp;
    // store_error if it cannot be opened), or behind any other store. With
    // `group` (the daemon's --threads > 1) they are registered there, once
    // for the whole daemon: sessions on every scheduler ask them.
    static std::shared_ptr<board> open(scheduler& s, const std::string& where, settings cfg,
                                       service_directory* group = nullptr);
    static std::shared_ptr<board> open(scheduler& s, std::unique_ptr<store> db, settings cfg,
                                       service_directory* group = nullptr);
    // The same services as ordinary components on the scheduler's thread
    // (tests): the same code paths, deterministic order, no threads.
    static std::shared_ptr<board> inline_board(scheduler& s, std::unique_ptr<store> db, settings cfg);
    // The services are components of the scheduler: they end with it, or
    // with stop_services(). The board does not touch them when it goes.
    ~board();
    board(const board&) = delete;
    board& operator=(const board&) = delete;

    const settings& config() const noexcept { return cfg_; }
    scheduler& sched() noexcept { return sched_; }

    // The names to ask(): the store (store_job) and the KDF (kdf_request).
    const std::string& store_service() const noexcept { return store_name_; }
    const std::string& kdf_service() const noexcept { return kdf_name_; }
    // Tells both services to stop (the daemon, on SIGTERM); idempotent.
    void stop_services();
    // An inline board's store, for a test to look at between steps
    // (bad_state on a threaded board: its store belongs to its thread).
    store& inline_store();

    // ---- sessions (any scheduler's thread: sessions of a daemon with
    // --threads > 1 run on several; relaxed atomics, no order needed) ------
    // Counts a session while the returned ticket lives.
    struct ticket {
        board* b = nullptr;
        ticket() = default;
        explicit ticket(board* x) noexcept : b(x) {}
        ticket(ticket&& o) noexcept : b(std::exchange(o.b, nullptr)) {}
        ticket& operator=(ticket&&) = delete;
        ~ticket() {
            if (b) b->sessions_.fetch_sub(1, std::memory_order_relaxed);
        }
    };
    ticket enter() noexcept {
        sessions_.fetch_add(1, std::memory_order_relaxed);
        sessions_total_.fetch_add(1, std::memory_order_relaxed);
        return ticket(this);
    }
    // enter() unless max_sessions are open: the cap holds however many
    // schedulers admit sessions at once (a check, then enter(), would not).
    std::optional<ticket> try_enter() noexcept;
    std::size_t sessions() const noexcept { return sessions_.load(std::memory_order_relaxed); }
    std::uint64_t sessions_total() const noexcept { return sessions_total_.load(std::memory_order_relaxed); }
    bool full() const noexcept { return sessions() >= cfg_.max_sessions; }

    // Jobs queued or running in the store service, the KDF service (0 inline).
    std::size_t db_pending() const;
    // Jobs the store service answered "store busy" (store_service::refused_busy).
    std::uint64_t db_refused_busy() const;
    std::size_t kdf_pending() const;

private:
    board(scheduler& s, settings cfg);
    // A board whose two services are StoreService (owning `db`) and KdfService.
    template <class StoreService, class KdfService, class Db>
    static std::shared_ptr<board> with_services(scheduler& s, Db db, settings cfg, service_directory* group);
    template <class T>
    T* service_as(const std::string& name) const;

    scheduler& sched_;
    settings cfg_;
    std::string store_name_ = store_service_name;
    std::string kdf_name_ = kdf_service_name;
    std::atomic<std::size_t> sessions_{0};
    std::atomic<std::uint64_t> sessions_total_{0};
};

} // namespace kamaelia::bbs
