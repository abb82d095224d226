// Greylist answers counted by outcome, and each ask timed to its durable
// answer (the store's round trip), for the console's /metrics and charts.
// The askers (the SMTP session, the policy protocol) update it after their
// ask() returns, on their own scheduler thread, and with the daemon's
// --threads that is several threads while the console reads it on
// scheduler 0: relaxed atomic counters and a shared_histogram, no lock.
#pragma once

#include <kamaelia/core/metrics.hpp>
#include <kamaelia/greylist/decision.hpp>

#include <atomic>
#include <cstdint>

namespace kamaelia::greylist {

class meter {
public:
    void count(const decision& d, double seconds) {
        switch (d.what) {
        case verdict::pass: pass_.fetch_add(1, std::memory_order_relaxed); break;
        case verdict::whitelisted: whitelisted_.fetch_add(1, std::memory_order_relaxed); break;
        case verdict::greylisted: greylisted_.fetch_add(1, std::memory_order_relaxed); break;
        case verdict::tempfail: tempfail_.fetch_add(1, std::memory_order_relaxed); break;
        }
        ask_seconds_.observe(seconds);
    }
    std::uint64_t pass() const noexcept { return pass_.load(std::memory_order_relaxed); }
    std::uint64_t whitelisted() const noexcept { return whitelisted_.load(std::memory_order_relaxed); }
    std::uint64_t greylisted() const noexcept { return greylisted_.load(std::memory_order_relaxed); }
    std::uint64_t tempfail() const noexcept { return tempfail_.load(std::memory_order_relaxed); }
    metrics::histogram ask_seconds() const { return ask_seconds_.snapshot(); }

private:
    std::atomic<std::uint64_t> pass_{0}, whitelisted_{0}, greylisted_{0}, tempfail_{0};
    metrics::shared_histogram ask_seconds_;
};

} // namespace kamaelia::greylist
