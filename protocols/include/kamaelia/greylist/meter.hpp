// Greylist answers counted by outcome, and each ask timed to its durable
// answer (the store's round trip), for the console's /metrics and charts.
// The askers (the SMTP session, the policy protocol) update it after their
// ask() returns, on their own scheduler thread: plain counters.
#pragma once

#include <kamaelia/core/metrics.hpp>
#include <kamaelia/greylist/decision.hpp>

#include <cstdint>

namespace kamaelia::greylist {

struct meter {
    std::uint64_t pass = 0, whitelisted = 0, greylisted = 0, tempfail = 0;
    metrics::histogram ask_seconds;

    void count(const decision& d, double seconds) noexcept {
        switch (d.what) {
        case verdict::pass: ++pass; break;
        case verdict::whitelisted: ++whitelisted; break;
        case verdict::greylisted: ++greylisted; break;
        case verdict::tempfail: ++tempfail; break;
        }
        ask_seconds.observe(seconds);
    }
};

} // namespace kamaelia::greylist
