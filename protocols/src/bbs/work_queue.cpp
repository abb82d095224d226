#include <kamaelia/bbs/work_queue.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <exception>
#include <utility>

namespace kamaelia::bbs {

work_queue::work_queue(std::string name, batch_runner batch)
    : name_(std::move(name)), batch_(std::move(batch)), thread_([this] { run(); }) {}

work_queue::~work_queue() {
    {
        std::lock_guard lk(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    jobs_.clear();
}

void work_queue::submit(std::function<void()> job) {
    {
        std::lock_guard lk(mu_);
        jobs_.push_back(std::move(job));
    }
    cv_.notify_one();
}

std::size_t work_queue::pending() const {
    std::lock_guard lk(mu_);
    return jobs_.size() + running_;
}

void work_queue::run() {
    constexpr std::size_t max_batch = 512;
    std::unique_lock lk(mu_);
    std::vector<job> batch;
    for (;;) {
        cv_.wait(lk, [&] { return stopping_ || !jobs_.empty(); });
        if (stopping_) return; // what is still queued is dropped: nobody waits for it now
        std::size_t n = batch_ ? std::min(jobs_.size(), max_batch) : 1;
        for (std::size_t i = 0; i < n; ++i) {
            batch.push_back(std::move(jobs_.front()));
            jobs_.pop_front();
        }
        running_ = n;
        lk.unlock();
        try {
            if (batch_) {
                batch_(batch);
            } else {
                batch.front()();
            }
        } catch (const std::exception& e) {
            spdlog::error("{}: a job failed: {}", name_, e.what());
        } catch (...) {
            spdlog::error("{}: a job failed", name_);
        }
        batch.clear(); // captured state goes on this thread, before the count drops
        lk.lock();
        running_ = 0;
    }
}

} // namespace kamaelia::bbs
