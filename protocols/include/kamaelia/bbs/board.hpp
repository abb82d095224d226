// The bulletin board every session shares: its settings, the store behind
// ONE database thread, a worker for password hashing, the login throttle
// and the count of open sessions.
//
//   auto b = bbs::board::open(sched, "var/bbs.sqlite", settings);  // threads started
//   b->on_db([](bbs::store& db) { ... });   // runs on the database thread
//
// Sessions never touch the store themselves: they hand a job to the
// database thread and are woken (scheduler::post, on their own thread)
// when it is done. The database thread takes every job waiting and runs
// them in one transaction (group commit: one fsync for all of them); their
// replies go out only once it has committed, so an acknowledged post is on
// disk. In tests a board can run jobs inline on the caller's thread
// (board::inline_board), which keeps stage tests deterministic.
#pragma once

#include <kamaelia/bbs/store.hpp>
#include <kamaelia/bbs/work_queue.hpp>
#include <kamaelia/core/component.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace kamaelia {
class scheduler;
}

namespace kamaelia::bbs {

struct settings {
    std::uint32_t kdf_iterations = default_kdf_iterations;
    std::size_t max_sessions = 1000;       // beyond it a newcomer is told the board is full
    duration idle_timeout = std::chrono::minutes(10); // no input for this long ends a session
    std::size_t max_line = 1000;           // longest input line the board takes (bytes)
    std::size_t max_subject = 200;         // bytes
    std::size_t max_body = 64 * 1024;      // bytes of a message body
    unsigned attempts_per_session = 3;     // failed logins before a connection is closed
    unsigned max_failures = 5;             // failed logins for one name from one address ...
    duration failure_window = std::chrono::minutes(15); // ... within this long lock it for this long
};

// The board's database and hashing failures, logged when an outage starts,
// then rate-limited with a count, then when it ends (never a line per job).
// One limiter per worker thread, so no lock: call it on the worker.
void note_worker_failure(const std::string& what);
void note_worker_success();

class board {
public:
    // Opens the store at `path` and starts the database and KDF threads.
    static std::shared_ptr<board> open(scheduler& s, const std::string& path, settings cfg);
    // Runs every job inline on the calling thread (tests): the same code
    // paths, deterministic order, no threads.
    static std::shared_ptr<board> inline_board(scheduler& s, std::unique_ptr<store> db, settings cfg);
    ~board();
    board(const board&) = delete;
    board& operator=(const board&) = delete;

    const settings& config() const noexcept { return cfg_; }
    scheduler& sched() noexcept { return sched_; }

    // Runs `job` on the database thread (it owns the store there).
    void on_db(std::function<void(store&)> job);
    // Runs `job` on the KDF worker.
    void on_kdf(std::function<void()> job);
    // From a worker: runs `fn(committed)` on the scheduler's thread. From
    // a database job, once the job's transaction has committed (committed
    // false: it was lost, nothing it wrote is there); elsewhere at once
    // with true.
    void reply(std::function<void(bool committed)> fn);

    // ---- sessions (scheduler thread) ---------------------------------------
    // Counts a session while the returned ticket lives.
    struct ticket {
        board* b = nullptr;
        ticket() = default;
        explicit ticket(board* x) noexcept : b(x) {}
        ticket(ticket&& o) noexcept : b(std::exchange(o.b, nullptr)) {}
        ticket& operator=(ticket&&) = delete;
        ~ticket() {
            if (b) --b->sessions_;
        }
    };
    ticket enter() { ++sessions_; ++sessions_total_; return ticket(this); }
    std::size_t sessions() const noexcept { return sessions_; }
    std::uint64_t sessions_total() const noexcept { return sessions_total_; }
    bool full() const noexcept { return sessions_ >= cfg_.max_sessions; }

    // ---- login throttle (scheduler thread) ------------------------------------
    // How long `name` from `address` is still locked out (zero: not locked).
    duration locked_for(const std::string& name, const std::string& address);
    void note_failure(const std::string& name, const std::string& address);
    void note_success(const std::string& name, const std::string& address);

    // Jobs queued or running on the database thread, the KDF worker (0 inline).
    std::size_t db_pending() const { return db_thread_ ? db_thread_->pending() : 0; }
    std::size_t kdf_pending() const { return kdf_thread_ ? kdf_thread_->pending() : 0; }

private:
    board(scheduler& s, std::unique_ptr<store> db, settings cfg, bool threaded);
    struct failures {
        unsigned count = 0;
        time_point first{};
    };
    void prune(time_point now);
    void run_batch(std::vector<work_queue::job>& jobs);

    scheduler& sched_;
    settings cfg_;
    std::unique_ptr<store> db_;
    std::size_t sessions_ = 0;
    std::uint64_t sessions_total_ = 0;
    std::unordered_map<std::string, failures> failures_;
    // Declared last: destroyed (drained and joined) before the store closes.
    std::unique_ptr<work_queue> kdf_thread_;
    std::unique_ptr<work_queue> db_thread_;
};

} // namespace kamaelia::bbs
