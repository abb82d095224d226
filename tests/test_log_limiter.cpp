// log_limiter: a repeating condition logged when it starts, rate-limited with
// a count, and when it ends (issue 14, defect 8).
#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/util/log_limiter.hpp>

#include <catch2/catch.hpp>

#include <chrono>

using namespace kamaelia;
using namespace std::chrono_literals;
using ev = log_limiter::event;

namespace {
// The lines are the point in production, noise here.
struct quiet {
    spdlog::level::level_enum was = spdlog::get_level();
    quiet() { spdlog::set_level(spdlog::level::off); }
    ~quiet() { spdlog::set_level(was); }
};
} // namespace

TEST_CASE("log_limiter: start, rate-limited repeats with a count, end", "[log_limiter]") {
    quiet q;
    manual_clock clock;
    log_limiter l("test: database", 10s, &clock);
    CHECK(l.ok() == ev::none); // nothing to end yet
    CHECK(l.fail("read-only") == ev::started);
    CHECK(l.active());
    int logged = 0;
    // 3,000 failures in one second: not one more line.
    for (int i = 0; i < 3000; ++i)
        if (l.fail("read-only") != ev::none) ++logged;
    CHECK(logged == 0);
    clock.advance(10s);
    CHECK(l.fail("read-only") == ev::repeated);
    CHECK(l.last_reported() == 3001); // what was suppressed, counted
    CHECK(l.fail("read-only") == ev::none);
    clock.advance(5s);
    CHECK(l.ok() == ev::ended);
    CHECK_FALSE(l.active());
    CHECK(l.count() == 3003);
    CHECK(l.ok() == ev::none); // ended once
    // A new outage starts afresh.
    CHECK(l.fail("corrupt") == ev::started);
    CHECK(l.count() == 1);
    CHECK(l.total() == 3004);
}

TEST_CASE("log_limiter: one line per interval however long the outage", "[log_limiter]") {
    quiet q;
    manual_clock clock;
    log_limiter l("test: accept", 1s, &clock);
    int lines = 0;
    for (int i = 0; i < 10'000; ++i) { // 100 s of failures every 10 ms
        if (l.fail("too many open files") != ev::none) ++lines;
        clock.advance(10ms);
    }
    CHECK(lines >= 99);
    CHECK(lines <= 101);
}
