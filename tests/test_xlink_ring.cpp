// The ring under cross-scheduler links (detail/xlink.hpp): one lock-free
// single-producer/single-consumer ring per scheduler pair, an overflow on the
// sender's side when it is full. These run on real threads (ThreadSanitizer
// runs them): wrap-around and overflow with each link's order checked, a full
// ring under each delivery policy, a parked sender woken on room, a receiver
// ending under a parked sender, a group destroyed with the ring full.
//
// To fill the ring on purpose a `blocker` holds the receiving scheduler's
// thread (it returns only when the test says so), so the pump cannot drain
// while the senders send: what each link holds is then exact, not a race.
#include "xlink_support.hpp"

#include <kamaelia/core/component.hpp>
#include <kamaelia/core/scheduler_group.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

using namespace kamaelia;

namespace {

// Sends 0..n-1 with co_await send; `progress` counts the sends that
// completed (read by the test thread), then producer_finished.
struct counted_source : component {
    int n;
    std::atomic<int> progress{0};
    std::vector<bool> results; // read after the group has joined
    explicit counted_source(int count) : n(count) {}
    task main() override {
        for (int i = 0; i < n; ++i) {
            results.push_back(co_await send(i));
            progress.store(i + 1, std::memory_order_release);
        }
        forward_shutdown();
    }
};

// Holds its scheduler's thread until `go` (or the liveness deadline).
struct blocker : component {
    std::atomic<bool>* go;
    explicit blocker(std::atomic<bool>* g) : go(g) {}
    task main() override {
        auto deadline = std::chrono::steady_clock::now() + test::liveness_deadline;
        while (!go->load(std::memory_order_acquire) && std::chrono::steady_clock::now() < deadline)
            std::this_thread::yield();
        co_return;
    }
};

// A source on scheduler 0 linked to a sink on scheduler 1 that does not
// read until let in, its inbox bound `limit`.
struct parked_pair {
    std::vector<std::unique_ptr<component>> kept; // outlives the group
    scheduler_group g{2, group_options{.pin = false, .until_idle = true}};
    int limit;
    counted_source& src;
    test::gate_sink& sink;
    parked_pair(int n, int bound, bool signal_too)
        : limit(bound),
          src(test::keep<counted_source>(kept, g[0], n)),
          sink(test::keep<test::gate_sink>(kept, g[1])) {
        sink.in().set_limit(static_cast<std::uint32_t>(limit));
        component::link({src, "outbox"}, {sink, "inbox"});
        if (signal_too) component::link({src, "signal"}, {sink, "control"});
    }
    // Starts the group. The inbox holds `limit`, the link's credit `limit`
    // more, and the next send parks: true once exactly 2 x limit are done.
    bool start_parked() {
        g.start();
        if (!test::eventually([&] { return src.progress.load(std::memory_order_acquire) >= 2 * limit; })) return false;
        return src.progress.load(std::memory_order_acquire) == 2 * limit;
    }
    void finish() {
        g.wait(0);
        g.wait(1);
        g.join();
    }
};

} // namespace

TEST_CASE("xlink ring: wrap-around and overflow under load keep each link's order", "[core][xlink][threads]") {
    // Eight links each way whose credit (8 x 512) is four rings' worth: the
    // rings wrap many times and fill, the overflow takes the rest.
    constexpr int links = 8;
    constexpr int n = 6000;
    std::vector<std::unique_ptr<component>> kept;
    scheduler_group g(2, group_options{.pin = false, .until_idle = true});
    std::vector<test::gate_sink*> sinks;
    for (int i = 0; i < 2 * links; ++i) {
        std::size_t from = i < links ? 0 : 1;
        auto& src = test::keep<counted_source>(kept, g[from], n);
        auto& sink = test::keep<test::gate_sink>(kept, g[1 - from]);
        sink.open = true;
        sinks.push_back(&sink);
        sink.in().set_limit(512);
        component::link({src, "outbox"}, {sink, "inbox"});
        component::link({src, "signal"}, {sink, "control"});
    }
    g.start();
    g.wait(0);
    g.wait(1);
    g.join();
    for (auto* s : sinks) REQUIRE(s->got == test::range_vec(0, n));
}

TEST_CASE("xlink ring: a full ring under each delivery policy", "[core][xlink][threads]") {
    constexpr int links = 6; // 6 x 512 of credit: the ring (1024) fills, the overflow holds the rest
    constexpr int limit = 512;
    constexpr int n = 2000;
    for (auto p : {delivery_policy::suspend, delivery_policy::drop_newest, delivery_policy::drop_oldest,
                   delivery_policy::fail}) {
        CAPTURE(to_string(p));
        std::atomic<bool> go{false};
        std::vector<std::unique_ptr<component>> kept;
        scheduler_group g(2, group_options{.pin = false, .until_idle = true});
        test::keep<blocker>(kept, g[1], &go); // first in scheduler 1's queue: the pumps wait behind it
        std::vector<counted_source*> srcs;
        std::vector<test::gate_sink*> sinks;
        for (int i = 0; i < links; ++i) {
            auto& src = test::keep<counted_source>(kept, g[0], n);
            auto& sink = test::keep<test::gate_sink>(kept, g[1]);
            sink.open = true;
            sink.in().set_limit(limit);
            component::link({src, "outbox"}, {sink, "inbox"}, p);
            component::link({src, "signal"}, {sink, "control"});
            srcs.push_back(&src);
            sinks.push_back(&sink);
        }
        g.start();
        // With the pumps held, a suspend link takes `limit` sends (its
        // credit) and parks on the next; the others never park.
        const int expected_progress = p == delivery_policy::suspend ? limit : n;
        REQUIRE(test::eventually([&] {
            for (auto* s : srcs)
                if (s->progress.load(std::memory_order_acquire) < expected_progress) return false;
            return true;
        }));
        for (auto* s : srcs) REQUIRE(s->progress.load(std::memory_order_acquire) == expected_progress);
        go.store(true, std::memory_order_release);
        g.wait(0);
        g.wait(1);
        g.join();
        for (std::size_t i = 0; i < sinks.size(); ++i) {
            const auto& got = sinks[i]->got;
            const auto& res = srcs[i]->results;
            switch (p) {
            case delivery_policy::suspend: REQUIRE(got == test::range_vec(0, n)); break;
            case delivery_policy::drop_newest:
                // The first `limit` took the credit, the rest were dropped.
                REQUIRE(got == test::range_vec(0, limit));
                REQUIRE(std::count(res.begin(), res.end(), false) == n - limit);
                break;
            case delivery_policy::drop_oldest:
                // Each send past the credit took back the oldest in transit,
                // in the ring or in the overflow.
                REQUIRE(got == test::range_vec(n - limit, n));
                REQUIRE(std::count(res.begin(), res.end(), false) == 0);
                break;
            case delivery_policy::fail:
                // The credit, then one failed send cut the link; the rest went
                // to an unlinked outbox. The receiver was told.
                REQUIRE(got == test::range_vec(0, limit));
                REQUIRE(std::count(res.begin(), res.end(), false) == 1);
                REQUIRE_FALSE(res[limit]);
                REQUIRE(sinks[i]->controls ==
                        std::vector<ipc_kind>{ipc_kind::link_failed, ipc_kind::producer_finished});
                break;
            }
        }
    }
}

TEST_CASE("xlink ring: a sender parked on a full remote inbox is woken when the receiver makes room",
          "[core][xlink][threads]") {
    constexpr int n = 3000;
    parked_pair p(n, 4, true);
    REQUIRE(p.start_parked());
    p.g.post(1, [&p] { p.sink.let_in(); });
    p.finish();
    REQUIRE(p.sink.got == test::range_vec(0, n));
    REQUIRE(std::count(p.src.results.begin(), p.src.results.end(), false) == 0);
}

TEST_CASE("xlink ring: a receiver stopped while a sender on another thread is parked on it", "[core][xlink][threads]") {
    constexpr int n = 100000;
    parked_pair p(n, 2, false);
    REQUIRE(p.start_parked());
    p.g.post(1, [&p] { p.sink.stop(); }); // ends with the sender parked on it
    // The sender is woken, its link goes with the receiver, it runs to its end
    // (later sends go to an unlinked outbox); both threads drain.
    p.finish();
    REQUIRE(p.src.finished());
    REQUIRE(p.src.progress.load() == n);
    REQUIRE(p.src.links().empty());
    REQUIRE(p.sink.got.empty());
}

TEST_CASE("xlink ring: destroying the group with the ring and the overflow full", "[core][xlink][threads]") {
    constexpr int links = 6;
    constexpr int limit = 512;
    for (auto p : {delivery_policy::suspend, delivery_policy::drop_oldest}) {
        std::atomic<bool> go{false};
        std::vector<std::unique_ptr<component>> kept; // outlives the group
        auto g = std::make_unique<scheduler_group>(2);
        test::keep<blocker>(kept, (*g)[1], &go);
        std::vector<counted_source*> srcs;
        for (int i = 0; i < links; ++i) {
            auto& src = test::keep<counted_source>(kept, (*g)[0], 5000); // suspend: parks at `limit`
            auto& sink = test::keep<test::gate_sink>(kept, (*g)[1]);
            sink.in().set_limit(limit);
            component::link({src, "outbox"}, {sink, "inbox"}, p);
            srcs.push_back(&src);
        }
        g->start();
        REQUIRE(test::eventually([&] {
            for (auto* s : srcs)
                if (s->progress.load(std::memory_order_acquire) < limit) return false;
            return true;
        }));
        go.store(true, std::memory_order_release);
        g.reset(); // stop, join; every component, pump, ring slot and overflow entry goes
    }
}
