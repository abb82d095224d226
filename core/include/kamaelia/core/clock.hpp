// Time for timers: the steady clock's types, and a clock a test can move.
#pragma once

#include <chrono>

namespace kamaelia {

using clock_type = std::chrono::steady_clock;
using time_point = clock_type::time_point;
using duration = clock_type::duration;

// The time source for a scheduler's timers: the steady clock, or a manual one in tests.
class clock_source {
public:
    virtual ~clock_source() = default;
    virtual time_point now() const noexcept = 0;
};

class manual_clock final : public clock_source {
public:
    explicit manual_clock(time_point start = time_point{} + std::chrono::hours(1)) noexcept : now_(start) {}
    time_point now() const noexcept override { return now_; }
    void advance(duration d) noexcept { now_ += d; }
    void set(time_point t) noexcept { now_ = t; }

private:
    time_point now_;
};

} // namespace kamaelia
