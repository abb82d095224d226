// A thread that runs jobs one after another, first in first out: the
// board's one database thread, and the worker that computes password
// hashes, so neither SQLite nor the KDF ever blocks the scheduler.
//
//   bbs::work_queue db("bbs-db");
//   db.submit([&] { store.post(...); sched.post(reply); });
//
// The queue is unbounded by design: every session has at most one job in
// flight and the number of sessions is capped, so the session cap bounds it.
// Destruction lets the job in progress finish, drops those not started
// (at shutdown nobody waits for their replies: no post is acknowledged
// unless its job ran and committed) and joins the thread. The owner
// destroys the queue before the scheduler, so a late reply finds it alive.
//
// With a batch runner the thread takes every job queued at once and hands
// them over together (the board's database thread commits them in one
// transaction: one fsync for many sessions' writes).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace kamaelia::bbs {

class work_queue {
public:
    using job = std::function<void()>;
    using batch_runner = std::function<void(std::vector<job>&)>;
    explicit work_queue(std::string name, batch_runner batch = {});
    ~work_queue();
    work_queue(const work_queue&) = delete;
    work_queue& operator=(const work_queue&) = delete;

    // Thread-safe. A job that throws is logged and the thread goes on.
    void submit(std::function<void()> job);
    // Jobs queued and not yet finished.
    std::size_t pending() const;
    const std::string& name() const noexcept { return name_; }

private:
    void run();

    std::string name_;
    batch_runner batch_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::function<void()>> jobs_;
    std::size_t running_ = 0;
    bool stopping_ = false;
    std::thread thread_; // last: starts once the rest exists
};

} // namespace kamaelia::bbs
