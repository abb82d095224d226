// token_bucket: the pacing arithmetic of the file reader, with no clock of
// its own (the caller passes the scheduler's time), so it is tested with a
// manual clock and never spins: a caller short of tokens asks ready_at()
// and sleeps until then.
#pragma once

#include <kamaelia/core/component.hpp> // time_point, duration

#include <algorithm>
#include <chrono>

namespace kamaelia::multicast {

class token_bucket {
public:
    // `rate` tokens (bytes) a second, at most `capacity` saved up; it starts full.
    token_bucket(double rate, double capacity, time_point now) noexcept
        : rate_(rate),
          capacity_(capacity),
          tokens_(capacity),
          last_(now) {}

    double rate() const noexcept { return rate_; }
    double capacity() const noexcept { return capacity_; }
    // Tokens available at `now` (time never runs backwards here).
    double available(time_point now) noexcept {
        if (now > last_) {
            double add = std::chrono::duration<double>(now - last_).count() * rate_;
            tokens_ = std::min(capacity_, tokens_ + add);
            last_ = now;
        }
        return tokens_;
    }
    // Takes `n` tokens if there are that many at `now`.
    bool take(double n, time_point now) noexcept {
        if (available(now) + 1e-9 < n) return false;
        tokens_ = std::max(0.0, tokens_ - n);
        return true;
    }
    // The earliest time `n` tokens (n <= capacity) are there.
    time_point ready_at(double n, time_point now) noexcept {
        double have = available(now);
        if (have >= n) return now;
        auto wait = std::chrono::duration<double>((n - have) / rate_);
        return now + std::max(duration(1), std::chrono::ceil<duration>(wait));
    }

private:
    double rate_, capacity_, tokens_;
    time_point last_;
};

} // namespace kamaelia::multicast
