// For tests over real loopback sockets: the real-time scheduler is run by
// hand until a condition holds, bounded by a generous liveness deadline.
#pragma once

#include <kamaelia/core/scheduler.hpp>

#include <asio/io_context.hpp>

#include <chrono>
#include <functional>

namespace kamaelia::test {

inline bool run_until(scheduler& s, const std::function<bool()>& done,
                      std::chrono::seconds deadline_after = std::chrono::seconds(60)) {
    auto deadline = std::chrono::steady_clock::now() + deadline_after;
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        if (!s.run_once()) s.io().run_one_for(std::chrono::milliseconds(50));
    }
    return true;
}

} // namespace kamaelia::test
