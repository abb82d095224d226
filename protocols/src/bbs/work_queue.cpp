#include <kamaelia/bbs/work_queue.hpp>

#include <spdlog/spdlog.h>

#include <exception>
#include <utility>

namespace kamaelia::bbs {

work_queue::work_queue(std::string name) : name_(std::move(name)), thread_([this] { run(); }) {}

work_queue::~work_queue() {
    {
        std::lock_guard lk(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
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
    std::unique_lock lk(mu_);
    for (;;) {
        cv_.wait(lk, [&] { return stopping_ || !jobs_.empty(); });
        if (jobs_.empty()) return; // stopping, and everything queued has run
        std::function<void()> job = std::move(jobs_.front());
        jobs_.pop_front();
        ++running_;
        lk.unlock();
        try {
            job();
        } catch (const std::exception& e) {
            spdlog::error("{}: a job failed: {}", name_, e.what());
        } catch (...) {
            spdlog::error("{}: a job failed", name_);
        }
        job = nullptr; // captured state goes on this thread, before the count drops
        lk.lock();
        --running_;
    }
}

} // namespace kamaelia::bbs
