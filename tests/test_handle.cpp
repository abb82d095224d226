// handle and background: ordinary code talking to a running graph (docs/ORIGINAL.md, Core: embedding).
#include "fixture.hpp"
#include "thread_support.hpp"

#include <kamaelia/core/handle.hpp>
#include <kamaelia/core/introspection.hpp>
#include <kamaelia/core/threaded_component.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace kamaelia;
using kamaelia::test::latch_flag;
using namespace std::chrono_literals;

namespace {

constexpr auto deadline = kamaelia::test::liveness_deadline;

struct upper : component {
    task main() override {
        while (!shutdown_requested()) {
            while (auto s = recv<std::string>()) {
                std::string out = *s;
                std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::toupper(c); });
                co_await send(std::move(out));
            }
            co_await wait_any();
        }
        forward_shutdown();
    }
};

struct echo : component {
    task main() override {
        while (!shutdown_requested()) {
            while (auto m = recv_message()) co_await send_message(std::move(*m));
            co_await wait_any();
        }
        forward_shutdown();
    }
};

struct thrower : component {
    task main() override {
        co_await wait_for("inbox");
        throw std::runtime_error("bad request");
    }
};

// Runs until stopped; says when it has gone.
struct sentinel : component {
    latch_flag* gone;
    explicit sentinel(latch_flag* g) : gone(g) {}
    ~sentinel() override { gone->set(); }
    task main() override {
        for (;;) co_await wait_for("control");
    }
};

// Never reads its inbox (bounded at 1).
struct deaf : component {
    deaf() { in("inbox").set_limit(1); }
    task main() override {
        while (!shutdown_requested()) co_await wait_for("control");
    }
};

} // namespace

TEST_CASE("handle: put and get round trip through a real component", "[handle][threads]") {
    background bg;
    handle h = bg.wrap(std::make_unique<upper>());
    REQUIRE(h.put(std::string("hello")));
    REQUIRE(h.get<std::string>("outbox", deadline) == "HELLO");
    REQUIRE(h.put(std::string("world")));
    REQUIRE(h.get<std::string>("outbox", deadline) == "WORLD");
    REQUIRE_FALSE(h.try_get<std::string>().has_value());

    REQUIRE(h.put(producer_finished(), "control"));
    auto end = h.get<ipc>("signal", deadline);
    REQUIRE(end);
    REQUIRE(end->kind == ipc_kind::producer_finished);
    REQUIRE(h.wait_finished(deadline));
    REQUIRE_FALSE(h.failed());
    REQUIRE_FALSE(h.put(std::string("too late")));
    REQUIRE_FALSE(h.get<std::string>("outbox", 10ms).has_value());
}

TEST_CASE("handle: data before control both ways, in order", "[handle][threads][control]") {
    background bg;
    handle h = bg.wrap(std::make_unique<echo>(), 8);
    constexpr int n = 2000;
    // A reader on another thread, so that puts can block on full queues.
    std::vector<int> got;
    std::optional<ipc> end;
    std::thread reader([&] {
        while (auto v = h.get<int>("outbox", deadline)) {
            got.push_back(*v);
            if (got.size() == n) break;
        }
        end = h.get<ipc>("signal", deadline);
    });
    for (int i = 0; i < n; ++i) REQUIRE(h.put(i));
    REQUIRE(h.put(producer_finished(), "control"));
    reader.join();
    REQUIRE(got.size() == n);
    for (int i = 0; i < n; ++i) REQUIRE(got[i] == i);
    REQUIRE(end);
    REQUIRE(end->kind == ipc_kind::producer_finished);
    REQUIRE(h.wait_finished(deadline));
}

TEST_CASE("handle: several threads put concurrently, each in order", "[handle][threads]") {
    background bg;
    handle h = bg.wrap(std::make_unique<echo>(), 16);
    constexpr int threads = 4, per = 500;
    std::vector<std::thread> putters;
    for (int t = 0; t < threads; ++t)
        putters.emplace_back([&h, t] {
            for (int i = 0; i < per; ++i) h.put(t * 100000 + i);
        });
    std::vector<int> last(threads, -1);
    int count = 0;
    bool ordered = true;
    while (count < threads * per) {
        auto v = h.get<int>("outbox", deadline);
        if (!v) break;
        int t = *v / 100000, i = *v % 100000;
        if (i != last[t] + 1) ordered = false;
        last[t] = i;
        ++count;
    }
    for (auto& p : putters) p.join();
    REQUIRE(count == threads * per);
    REQUIRE(ordered);
}

TEST_CASE("handle: put blocks while full and gives up at its timeout", "[handle][threads][flow]") {
    background bg;
    handle h = bg.wrap(std::make_unique<deaf>(), 2);
    // Room for exactly four: the queue (2), the proxy's parked send (1), the inbox (1).
    for (int i = 0; i < 4; ++i) REQUIRE(h.put(i, "inbox", deadline));
    REQUIRE_FALSE(h.put(4, "inbox", 100ms)); // never room: it times out
    REQUIRE_FALSE(h.try_put(5));
    // A control notice waits behind the data too (data before control), so
    // this one stays queued; dropping the handle is what stops `deaf`.
    REQUIRE(h.put(shutdown_microprocess(), "control", 100ms));
    REQUIRE_FALSE(h.wait_finished(50ms));
}

TEST_CASE("handle: a failing component is reported", "[handle][threads][failure]") {
    background bg;
    handle h = bg.wrap(std::make_unique<thrower>());
    REQUIRE(h.put(1));
    auto report = h.get<ipc>("signal", deadline);
    REQUIRE(report);
    REQUIRE(report->kind == ipc_kind::component_error);
    REQUIRE(report->text == "bad request");
    REQUIRE(h.wait_finished(deadline));
    REQUIRE(h.failed());
    REQUIRE(h.error_text() == "bad request");
}

TEST_CASE("handle: wrapping a threaded component", "[handle][threads]") {
    struct doubler : threaded_component {
        void thread_main() override {
            while (!shutdown_requested()) {
                while (auto v = recv<int>()) send(*v * 2);
                wait();
            }
            forward_shutdown();
        }
    };
    background bg;
    handle h = bg.make<doubler>();
    for (int i = 0; i < 100; ++i) REQUIRE(h.put(i));
    for (int i = 0; i < 100; ++i) REQUIRE(h.get<int>("outbox", deadline) == i * 2);
    REQUIRE(h.put(producer_finished(), "control"));
    REQUIRE(h.get<ipc>("signal", deadline)->kind == ipc_kind::producer_finished);
    REQUIRE(h.wait_finished(deadline));
}

TEST_CASE("handle outliving its scheduler", "[handle][threads][lifecycle]") {
    handle h;
    {
        background bg;
        h = bg.wrap(std::make_unique<upper>());
        REQUIRE(h.put(std::string("a")));
        REQUIRE(h.get<std::string>("outbox", deadline) == "A");
        REQUIRE(h.put(std::string("b"))); // may or may not be answered before the end
    }
    REQUIRE(h.finished());
    REQUIRE(h.wait_finished(0ms));
    REQUIRE_FALSE(h.put(std::string("c")));
    REQUIRE_FALSE(h.try_put(std::string("c")));
    // Whatever was queued can still be read; then get() returns at once.
    while (h.get<std::string>("outbox", deadline)) {}
    REQUIRE_FALSE(h.get_message("outbox").has_value());
}

TEST_CASE("threads blocked in get and put return when the scheduler goes", "[handle][threads][lifecycle]") {
    handle reader_side, writer_side;
    latch_flag reading, writing;
    std::optional<int> got = 0;
    bool put_result = true;
    std::thread reader, writer;
    {
        background bg;
        reader_side = bg.wrap(std::make_unique<deaf>());
        writer_side = bg.wrap(std::make_unique<deaf>(), 1);
        reader = std::thread([&] {
            reading.set();
            got = reader_side.get<int>(); // nothing ever comes: blocks without a timeout
        });
        writer = std::thread([&] {
            // Room for three (queue, parked send, inbox); the fourth blocks for good.
            for (int i = 0; i < 3; ++i) writer_side.put(i);
            writing.set();
            put_result = writer_side.put(3);
        });
        REQUIRE(reading.wait());
        REQUIRE(writing.wait());
    } // closes both handles, stops the scheduler, destroys the graph
    reader.join();
    writer.join();
    REQUIRE_FALSE(got.has_value());
    REQUIRE_FALSE(put_result);
}

TEST_CASE("scheduler outliving the handle: the wrapped component is stopped", "[handle][threads][lifecycle]") {
    background bg;
    latch_flag gone;
    {
        handle h = bg.wrap(std::make_unique<sentinel>(&gone));
        REQUIRE(h.put(1));
    }
    REQUIRE(gone.wait());
    // Nothing is left on the scheduler.
    auto f = introspection::request_snapshot(bg.sched());
    REQUIRE(f.wait_for(deadline) == std::future_status::ready);
    REQUIRE(f.get().components.empty());
}

TEST_CASE("handle: moving it keeps one owner", "[handle][threads][lifecycle]") {
    background bg;
    latch_flag gone;
    handle a = bg.wrap(std::make_unique<sentinel>(&gone));
    handle b = std::move(a);
    REQUIRE_FALSE(static_cast<bool>(a));
    REQUIRE(static_cast<bool>(b));
    REQUIRE_FALSE(gone.wait_for(50ms)); // still running: b owns it
    b = handle();
    REQUIRE(gone.wait());
}

TEST_CASE("background::stop closes its handles", "[handle][threads][lifecycle]") {
    background bg;
    handle h = bg.wrap(std::make_unique<echo>());
    REQUIRE(h.put(7));
    REQUIRE(h.get<int>("outbox", deadline) == 7);
    bg.stop();
    REQUIRE(h.finished());
    REQUIRE_FALSE(h.put(8));
    REQUIRE_THROWS_AS(bg.wrap(std::make_unique<echo>()), bad_state);
}

TEST_CASE("handle: errors are clear", "[handle]") {
    test::fixture f;
    REQUIRE_THROWS_AS(handle(f.sched, nullptr), bad_component);
    auto active = std::make_unique<echo>();
    active->activate(f.sched);
    REQUIRE_THROWS_AS(handle(f.sched, std::move(active)), bad_state);
    handle empty;
    REQUIRE_THROWS_AS(empty.put(1), bad_state);
}

TEST_CASE("handle on a stepped scheduler: try_put/try_get, and blocking calls refuse", "[handle]") {
    // Single-threaded: the test is the scheduler's thread.
    test::fixture f;
    handle h(f.sched, std::make_unique<upper>());
    REQUIRE(h.try_put(std::string("abc")));
    f.settle();
    REQUIRE(h.ready("outbox") == 1);
    REQUIRE(h.try_get<std::string>() == "ABC");
    REQUIRE_THROWS_AS(h.get<std::string>("outbox", 1s), bad_state); // would deadlock
    REQUIRE_THROWS_AS(h.try_get<std::string>("nope"), bad_box);
    REQUIRE_THROWS_AS(h.try_put(1, "nope"), bad_box);
    handle e(f.sched, std::make_unique<echo>());
    REQUIRE(e.try_put(42));
    f.settle();
    REQUIRE_THROWS_AS(e.try_get<std::string>(), type_mismatch); // an int: stays queued
    REQUIRE(e.try_get<int>() == 42);
    REQUIRE(h.try_put(producer_finished(), "control"));
    f.settle();
    REQUIRE(h.finished());
    REQUIRE(h.try_get<ipc>("signal")->kind == ipc_kind::producer_finished);
    e = handle(); // dropping a handle stops what it wraps
    f.settle();
    REQUIRE(f.sched.live() == 0);
}
