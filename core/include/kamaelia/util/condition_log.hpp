// condition_log: logs a repeating condition (accept out of descriptors, a
// store outage) when it starts, then at most once per `every` with a count,
// and when it ends — never a line per occurrence.
//
//   condition_log log("listener: accept failed, pausing accepts");
//   log.occurred(now, ec.message());   // each failure
//   log.cleared(now);                  // the first success after them
//
// Times come from the caller (the scheduler's clock), so a test drives it
// with a manual clock.
#pragma once

#include <kamaelia/core/component.hpp>

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace kamaelia {

class condition_log {
public:
    explicit condition_log(std::string what, duration every = std::chrono::seconds(60))
        : what_(std::move(what)), every_(every) {}

    // One occurrence. Returns true if it wrote a line.
    bool occurred(time_point now, const std::string& detail = {}) {
        ++total_;
        if (!since_) {
            since_ = now;
            last_line_ = now;
            count_ = 1;
            unlogged_ = 0;
            spdlog::warn("{}{}", what_, detail.empty() ? std::string() : " (" + detail + ")");
            ++lines_;
            return true;
        }
        ++count_;
        ++unlogged_;
        if (now - last_line_ < every_) return false;
        spdlog::warn("{}: still happening, {} more time(s) in the last {:.0f}s{}", what_, unlogged_,
                     std::chrono::duration<double>(now - last_line_).count(),
                     detail.empty() ? std::string() : " (" + detail + ")");
        last_line_ = now;
        unlogged_ = 0;
        ++lines_;
        return true;
    }

    // The condition is over (a no-op if it was not happening). Returns true
    // if it wrote a line.
    bool cleared(time_point now) {
        if (!since_) return false;
        spdlog::info("{}: over after {:.1f}s and {} time(s)", what_,
                     std::chrono::duration<double>(now - *since_).count(), count_);
        since_.reset();
        ++lines_;
        return true;
    }

    bool active() const noexcept { return since_.has_value(); }
    std::uint64_t total() const noexcept { return total_; }
    std::uint64_t lines() const noexcept { return lines_; } // lines written, ever

private:
    std::string what_;
    duration every_;
    std::optional<time_point> since_;
    time_point last_line_{};
    std::uint64_t count_ = 0, unlogged_ = 0, total_ = 0, lines_ = 0;
};

} // namespace kamaelia
