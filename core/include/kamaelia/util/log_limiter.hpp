// A repeating condition, logged as an operator wants to read it: once when
// it starts, then at most once per interval with a count of what happened
// meanwhile, then once when it ends.
//
//   log_limiter db{"greylist: database", std::chrono::seconds(10)};
//   ...
//   catch (const store_error& e) { db.fail(e.what()); }   // 1 line, not 3,000 a second
//   ...
//   db.ok();                                              // "... recovered after 42 s (2,995 failures)"
//
// Not thread-safe: one owner (a component, or a service's thread). The clock
// is injectable (a kamaelia::clock_source, e.g. a manual_clock in tests), or
// a component passes its scheduler's time to each call:
//
//   log_limiter backoff{"greeter: accept failed, pausing accepts", std::chrono::seconds(60)};
//   backoff.fail(ec.message(), sched()->now());   ...   backoff.ok(sched()->now());
//
// The one rate-limited logger of the tree: the listener's accept back-off,
// server_core's refusals, the greylist and board store outages.
#pragma once

#include <kamaelia/core/scheduler.hpp>

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace kamaelia {

class log_limiter {
public:
    enum class event : std::uint8_t {
        none,     // suppressed: counted for the next line
        started,  // the condition began: logged
        repeated, // still going, an interval since the last line: logged with the count
        ended,    // the condition ended: logged with the total
    };

    explicit log_limiter(std::string subject, duration interval = std::chrono::seconds(10),
                         const clock_source* clock = nullptr, spdlog::level::level_enum level = spdlog::level::err)
        : subject_(std::move(subject)),
          interval_(interval),
          clock_(clock),
          level_(level) {}

    // The condition happened (again). `detail` says how (the error text).
    event fail(std::string_view detail) { return fail(detail, now()); }
    event fail(std::string_view detail, time_point now) {
        ++total_;
        if (!active_) {
            active_ = true;
            since_ = last_line_ = now;
            count_ = 1;
            suppressed_ = 0;
            spdlog::log(level_, "{}: {}", subject_, detail);
            return event::started;
        }
        ++count_;
        ++suppressed_;
        if (now - last_line_ < interval_) return event::none;
        spdlog::log(level_, "{}: {} ({} times in the last {} s)", subject_, detail, suppressed_,
                    seconds(now - last_line_));
        last_reported_ = suppressed_;
        suppressed_ = 0;
        last_line_ = now;
        return event::repeated;
    }

    // The condition is seen absent (a success): ends an outage, if one was on.
    event ok() { return active_ ? ok(now()) : event::none; }
    event ok(time_point now) {
        if (!active_) return event::none;
        active_ = false;
        spdlog::info("{}: recovered after {} s ({} failures)", subject_, seconds(now - since_), count_);
        return event::ended;
    }

    bool active() const noexcept { return active_; }
    // Occurrences in the current (or last) outage, and ever.
    std::uint64_t count() const noexcept { return count_; }
    std::uint64_t total() const noexcept { return total_; }
    // The count carried by the last "repeated" line.
    std::uint64_t last_reported() const noexcept { return last_reported_; }

private:
    time_point now() const noexcept { return clock_ ? clock_->now() : clock_type::now(); }
    static long long seconds(duration d) noexcept {
        return std::chrono::duration_cast<std::chrono::seconds>(d).count();
    }

    std::string subject_;
    duration interval_;
    const clock_source* clock_;
    spdlog::level::level_enum level_;
    bool active_ = false;
    time_point since_{}, last_line_{};
    std::uint64_t count_ = 0, suppressed_ = 0, total_ = 0, last_reported_ = 0;
};

} // namespace kamaelia
