// Links between components on different schedulers: the same link() API,
// bounded inboxes and the four delivery policies, order kept per sender
// (end messages included), senders parked across threads, receivers that go,
// links cut while messages are in transit.
#include "group_fixture.hpp"
#include "thread_support.hpp"
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

// Sends 0..n-1 with co_await send, remembering each result, then
// producer_finished out of "signal".
struct int_source : component {
    int n;
    std::vector<bool> results;
    explicit int_source(int count) : n(count) {}
    task main() override {
        for (int i = 0; i < n; ++i) results.push_back(co_await send(i));
        forward_shutdown();
    }
    int accepted() const {
        int k = 0;
        for (bool b : results) k += b;
        return k;
    }
};

} // namespace

// ---- logic, on the deterministic fixture (several schedulers, one thread) ----

TEST_CASE("xlink: data and producer_finished cross in order, the receiver's bound holds", "[core][xlink]") {
    test::group_fixture g(2);
    auto& sink = g.spawn<test::gate_sink>(1);
    sink.in().set_limit(3);
    auto& src = g.spawn<int_source>(0, 50);
    auto& l = component::link({src, "outbox"}, {sink, "inbox"});
    component::link({src, "signal"}, {sink, "control"});
    REQUIRE(l.cross_scheduler());
    REQUIRE(g[1].live() == 2); // the sink and the pump that feeds it
    g.settle();
    // Parked: 3 in the inbox, 3 more of credit in transit, the sender waits.
    REQUIRE_FALSE(src.finished());
    REQUIRE(sink.in().size() == 3);
    REQUIRE(sink.max_seen <= 3);
    REQUIRE(src.results.size() == 6);
    sink.let_in();
    g.settle();
    REQUIRE(src.finished());
    REQUIRE(sink.finished());
    REQUIRE(sink.got == test::range_vec(0, 50));
    REQUIRE(sink.max_seen <= 3);
    // The end message did not overtake the data sent before it on the other link.
    REQUIRE(sink.data_when_finished == 50);
    REQUIRE(src.accepted() == 50);
    // The links went with the source; the pump with the links.
    REQUIRE(g[0].live() == 0);
    REQUIRE(g[1].live() == 0);
}

TEST_CASE("xlink: drop_newest drops by the receiver's bound", "[core][xlink]") {
    test::group_fixture g(2);
    auto& sink = g.spawn<test::gate_sink>(1);
    sink.in().set_limit(2);
    auto& src = g.spawn<int_source>(0, 20);
    component::link({src, "outbox"}, {sink, "inbox"}, delivery_policy::drop_newest);
    component::link({src, "signal"}, {sink, "control"});
    g.settle();
    REQUIRE(src.finished()); // never parked
    REQUIRE(sink.in().size() <= 2);
    sink.let_in();
    g.settle();
    REQUIRE(sink.finished());
    // Two entered transit (the link's credit), both fit the inbox.
    REQUIRE(sink.got == std::vector<int>{0, 1});
    REQUIRE(src.accepted() == 2);
}

TEST_CASE("xlink: drop_newest at the receiver when its inbox is fuller than the credit", "[core][xlink]") {
    test::group_fixture g(2);
    auto& sink = g.spawn<test::gate_sink>(1);
    sink.in().set_limit(2);
    auto& src = g.spawn<int_source>(0, 2);
    component::link({src, "outbox"}, {sink, "inbox"}, delivery_policy::drop_newest);
    g.settle();
    REQUIRE(sink.in().size() == 2);
    // A second sender fills the credit again while the inbox stays full.
    auto& src2 = g.spawn<int_source>(0, 2);
    component::link({src2, "outbox"}, {sink, "inbox"}, delivery_policy::drop_newest);
    g.settle();
    REQUIRE(src2.accepted() == 2);  // they crossed...
    REQUIRE(sink.in().size() == 2); // ...and were dropped at the full inbox
    sink.let_in();
    g.settle();
    REQUIRE(sink.got == std::vector<int>{0, 1});
}

TEST_CASE("xlink: drop_oldest keeps the newest, in transit and at the inbox", "[core][xlink]") {
    test::group_fixture g(2);
    auto& sink = g.spawn<test::gate_sink>(1);
    sink.in().set_limit(2);
    auto& src = g.spawn<int_source>(0, 20);
    component::link({src, "outbox"}, {sink, "inbox"}, delivery_policy::drop_oldest);
    component::link({src, "signal"}, {sink, "control"});
    g[0].run_until_idle(); // every send before the pump runs: transit holds the newest two
    g.settle();
    REQUIRE(src.finished());
    REQUIRE(sink.in().size() == 2);
    sink.let_in();
    g.settle();
    REQUIRE(sink.got == std::vector<int>{18, 19});
    REQUIRE(src.accepted() == 20);
}

TEST_CASE("xlink: fail cuts the link and tells the receiver", "[core][xlink]") {
    test::group_fixture g(2);
    auto& sink = g.spawn<test::gate_sink>(1);
    sink.in().set_limit(2);
    sink.end_on_finish = false;
    auto& src = g.spawn<int_source>(0, 10);
    component::link({src, "outbox"}, {sink, "inbox"}, delivery_policy::fail);
    g[0].run_until_idle();
    REQUIRE(src.finished());
    // 0 and 1 fit the credit; 2 found it full: refused, link cut, the rest
    // went nowhere (an unlinked outbox discards, as for a local link).
    REQUIRE(src.results.size() == 10);
    REQUIRE(src.results[0]);
    REQUIRE(src.results[1]);
    REQUIRE_FALSE(src.results[2]);
    REQUIRE(src.links().empty());
    g.settle();
    REQUIRE(sink.controls == std::vector<ipc_kind>{ipc_kind::link_failed});
    sink.let_in();
    g.settle();
    REQUIRE(sink.got == std::vector<int>{0, 1});
    REQUIRE(g[1].live() == 1); // the pump has gone with its last route
    sink.stop();
    g.settle();
}

TEST_CASE("xlink: fail at the receiver's inbox cuts the link there", "[core][xlink]") {
    test::group_fixture g(2);
    auto& sink = g.spawn<test::gate_sink>(1);
    sink.in().set_limit(1);
    sink.end_on_finish = false;
    auto& src = g.spawn<int_source>(0, 1);
    component::link({src, "outbox"}, {sink, "inbox"}, delivery_policy::fail);
    g.settle(); // 0 fills the inbox
    auto& src2 = g.spawn<int_source>(0, 1);
    component::link({src2, "outbox"}, {sink, "inbox"}, delivery_policy::fail);
    g.settle(); // 0 crosses and finds the inbox full
    REQUIRE(sink.controls == std::vector<ipc_kind>{ipc_kind::link_failed});
    sink.let_in();
    g.settle();
    REQUIRE(sink.got == std::vector<int>{0});
    sink.stop();
    g.settle();
    REQUIRE(g[1].live() == 0);
}

TEST_CASE("xlink: a receiver ending while the sender is parked frees the sender", "[core][xlink]") {
    test::group_fixture g(2);
    auto& sink = g.spawn<test::gate_sink>(1);
    sink.in().set_limit(2);
    auto& src = g.spawn<int_source>(0, 100);
    component::link({src, "outbox"}, {sink, "inbox"});
    g.settle();
    REQUIRE_FALSE(src.finished());
    REQUIRE(src.results.size() == 4); // two in the inbox, two of credit; the fifth send waits
    sink.stop();
    g.settle();
    // The sender woke, the link went with the receiver, the rest was discarded.
    REQUIRE(src.finished());
    REQUIRE(src.links().empty());
    REQUIRE(g[1].live() == 0);
}

TEST_CASE("xlink: a receiver destroyed while the sender is parked", "[core][xlink]") {
    test::group_fixture g(2);
    auto sink = std::make_unique<test::gate_sink>();
    sink->in().set_limit(1);
    sink->activate(g[1]);
    auto& src = g.spawn<int_source>(0, 100);
    component::link({src, "outbox"}, {*sink, "inbox"});
    g.settle();
    REQUIRE_FALSE(src.finished());
    sink.reset(); // the pump parked on its inbox goes free, not delivered
    g.settle();
    REQUIRE(src.finished());
    REQUIRE(g[1].live() == 0);
}

TEST_CASE("xlink: unlink while messages are in transit", "[core][xlink]") {
    test::group_fixture g(2);
    auto& sink = g.spawn<test::gate_sink>(1);
    sink.open = true;
    sink.end_on_finish = false;
    auto& src = g.spawn<int_source>(0, 5);
    auto& l = component::link({src, "outbox"}, {sink, "inbox"});
    g[0].run_until_idle(); // all five in transit, nothing delivered yet
    REQUIRE(src.finished());
    REQUIRE(sink.got.empty());
    // The source finishing unlinked it already; unlink by hand on a live one too.
    REQUIRE(src.links().empty());
    (void)l;
    auto& src2 = g.spawn<int_source>(0, 1000);
    auto& l2 = component::link({src2, "outbox"}, {sink, "inbox"});
    g[0].run_once(); // src2 sends some, then parks on the credit
    REQUIRE_FALSE(src2.finished());
    component::unlink(l2); // the parked send is released, not delivered
    g.settle();
    REQUIRE(src2.finished());
    // What crossed before the unlink arrives, in order.
    REQUIRE(sink.got.size() >= 5);
    REQUIRE(std::vector<int>(sink.got.begin(), sink.got.begin() + 5) == test::range_vec(0, 5));
    REQUIRE(test::ascending(std::vector<int>(sink.got.begin() + 5, sink.got.end())));
    REQUIRE(g[1].live() == 1); // the sink only: no route left, the pump ended
    sink.stop();
    g.settle();
}

TEST_CASE("xlink: a link across schedulers must end at an inbox", "[core][xlink]") {
    test::group_fixture g(2);
    auto& a = g.spawn<int_source>(0, 0);
    auto& b = g.spawn<int_source>(1, 0);
    REQUIRE_THROWS_AS(component::link({a, "outbox"}, {b, "outbox"}), bad_box);
    g.settle();
}

// ---- across threads (ThreadSanitizer runs these) ------------------------------

namespace {

struct relay : component {
    task main() override {
        while (!shutdown_requested()) {
            while (auto v = recv<int>())
                if (!co_await send(*v)) break;
            co_await wait_any();
        }
        forward_shutdown();
    }
};

struct checking_sink : component {
    std::atomic<bool>* done;
    int count = 0;
    bool in_order = true;
    explicit checking_sink(std::atomic<bool>* d) : done(d) {}
    task main() override {
        int next = 0;
        while (!shutdown_requested()) {
            while (auto v = recv<int>()) {
                in_order = in_order && *v == next;
                next = *v + 1;
                ++count;
            }
            co_await wait_any();
        }
        done->store(true);
    }
};

} // namespace

TEST_CASE("xlink: a pipeline alternating between two scheduler threads", "[core][xlink][threads]") {
    constexpr int n = 20000;
    std::atomic<bool> done{false};
    std::vector<std::unique_ptr<component>> kept;
    scheduler_group g(2, group_options{.pin = false, .until_idle = true});
    auto& src = test::keep<int_source>(kept, g[0], n);
    component* prev = &src;
    for (int i = 0; i < 8; ++i) {
        auto& r = test::keep<relay>(kept, g[static_cast<std::size_t>((i + 1) % 2)]);
        r.in().set_limit(static_cast<std::uint32_t>(1 + i % 3)); // tiny bounds: parks both ways
        component::link({*prev, "outbox"}, {r, "inbox"});
        component::link({*prev, "signal"}, {r, "control"});
        prev = &r;
    }
    auto& sink = test::keep<checking_sink>(kept, g[1], &done);
    component::link({*prev, "outbox"}, {sink, "inbox"});
    component::link({*prev, "signal"}, {sink, "control"});
    g.start();
    REQUIRE(test::eventually([&] { return done.load(); }));
    g.wait(0);
    g.wait(1);
    g.join();
    REQUIRE(sink.count == n);
    REQUIRE(sink.in_order);
}

TEST_CASE("xlink: drop policies across threads stay bounded and ordered", "[core][xlink][threads]") {
    for (auto p : {delivery_policy::drop_newest, delivery_policy::drop_oldest}) {
        std::atomic<bool> done{false};
        std::vector<std::unique_ptr<component>> kept;
        scheduler_group g(2, group_options{.pin = false, .until_idle = true});
        auto& src = test::keep<int_source>(kept, g[0], 20000);
        auto& sink = test::keep<checking_sink>(kept, g[1], &done);
        sink.in().set_limit(4);
        component::link({src, "outbox"}, {sink, "inbox"}, p);
        component::link({src, "signal"}, {sink, "control"});
        g.start();
        REQUIRE(test::eventually([&] { return done.load(); }));
        g.join();
        REQUIRE(sink.count >= 1);
        REQUIRE(sink.count <= 20000);
        REQUIRE(src.accepted() >= sink.count);
    }
}

TEST_CASE("xlink: fail across threads cuts the link, the receiver is told", "[core][xlink][threads]") {
    std::atomic<bool> done{false};
    struct told_sink : component {
        std::atomic<bool>* told;
        explicit told_sink(std::atomic<bool>* t) : told(t) {}
        task main() override {
            for (;;) {
                while (auto m = recv_message("control"))
                    if (const ipc* c = m->peek<ipc>(); c && c->kind == ipc_kind::link_failed) {
                        told->store(true);
                        co_return;
                    }
                co_await wait(ev_control); // never reads "inbox": it fills
            }
        }
    };
    std::vector<std::unique_ptr<component>> kept;
    scheduler_group g(2, group_options{.pin = false, .until_idle = true});
    auto& src = test::keep<int_source>(kept, g[0], 1000);
    auto& sink = test::keep<told_sink>(kept, g[1], &done);
    sink.in().set_limit(2);
    component::link({src, "outbox"}, {sink, "inbox"}, delivery_policy::fail);
    g.start();
    REQUIRE(test::eventually([&] { return done.load(); }));
    g.join();
    REQUIRE(src.finished());
    REQUIRE(sink.in().size() <= 2);
    // Whichever end found it full, the sender's send after the cut failed
    // (later sends go to its now unlinked outbox).
    REQUIRE(std::count(src.results.begin(), src.results.end(), false) == 1);
    REQUIRE(src.accepted() < 1000);
}

TEST_CASE("xlink: a receiver ending while a sender on another thread is parked", "[core][xlink][threads]") {
    std::atomic<bool> done{false};
    struct short_sink : component {
        std::atomic<bool>* done;
        explicit short_sink(std::atomic<bool>* d) : done(d) {}
        task main() override {
            int got = 0;
            while (got < 10) {
                while (got < 10 && recv<int>()) ++got;
                if (got < 10) co_await wait_any();
            }
            done->store(true); // ends with the sender parked on its full inbox
        }
    };
    std::vector<std::unique_ptr<component>> kept;
    scheduler_group g(2, group_options{.pin = false, .until_idle = true});
    auto& src = test::keep<int_source>(kept, g[0], 1'000'000);
    auto& sink = test::keep<short_sink>(kept, g[1], &done);
    sink.in().set_limit(1);
    component::link({src, "outbox"}, {sink, "inbox"});
    g.start();
    REQUIRE(test::eventually([&] { return done.load(); }));
    g.wait(0); // the sender was woken, its link went, it finished
    g.wait(1);
    g.join();
    REQUIRE(src.finished());
}

TEST_CASE("xlink: stopping the group while messages are in flight", "[core][xlink][threads]") {
    struct endless : component {
        std::atomic<int>* sent;
        explicit endless(std::atomic<int>* s) : sent(s) {}
        task main() override {
            for (int i = 0;; ++i) {
                co_await send(i);
                sent->fetch_add(1, std::memory_order_relaxed);
            }
        }
    };
    for (int round = 0; round < 3; ++round) {
        std::atomic<int> sent{0};
        std::atomic<bool> never{false};
        auto g = std::make_unique<scheduler_group>(2);
        auto& a = (*g)[0].spawn<endless>(&sent);
        auto& b = (*g)[1].spawn<endless>(&sent);
        auto& sa = (*g)[1].spawn<checking_sink>(&never);
        auto& sb = (*g)[0].spawn<checking_sink>(&never);
        sa.in().set_limit(static_cast<std::uint32_t>(1 + round));
        component::link({a, "outbox"}, {sa, "inbox"});
        component::link({b, "outbox"}, {sb, "inbox"});
        g->start();
        auto deadline = std::chrono::steady_clock::now() + test::liveness_deadline;
        while (sent.load() < 2000 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
        REQUIRE(sent.load() >= 2000);
        g.reset(); // stop, join, and every component, pump and message in transit goes
    }
}

TEST_CASE("xlink: per-scheduler wake-up counters count cross-thread wake-ups", "[core][xlink][threads]") {
    std::atomic<bool> done{false};
    std::vector<std::unique_ptr<component>> kept;
    scheduler_group g(2, group_options{.pin = false, .until_idle = true});
    auto& src = test::keep<int_source>(kept, g[0], 5000);
    auto& sink = test::keep<checking_sink>(kept, g[1], &done);
    sink.in().set_limit(4);
    component::link({src, "outbox"}, {sink, "inbox"});
    component::link({src, "signal"}, {sink, "control"});
    g.start();
    REQUIRE(test::eventually([&] { return done.load(); }));
    g.join();
    REQUIRE(sink.count == 5000);
    // Scheduler 1 was woken for batches (far fewer than one per message);
    // scheduler 0 for room for its parked sender.
    REQUIRE(g[1].wakeups_received() >= 1);
    REQUIRE(g[1].wakeups_received() <= 5000);
    REQUIRE(g[0].wakeups_received() >= 1);
    REQUIRE(g[0].observed_run_queue_depth() == 0);
}
