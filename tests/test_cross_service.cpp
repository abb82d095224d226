// Services across schedulers: ask() from a component on one scheduler to a
// service registered once for a group of schedulers (service_directory,
// scheduler_group::register_service). The [group] cases step the schedulers
// from one thread (group_fixture); the [threads] ones run a real group.
#include "group_fixture.hpp"
#include "service_support.hpp"
#include "thread_support.hpp"

#include <kamaelia/core/detail/service_port.hpp>
#include <kamaelia/core/scheduler_group.hpp>
#include <kamaelia/core/service.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace kamaelia;
using namespace std::chrono_literals;
using kamaelia::test::doubler;
using kamaelia::test::group_fixture;
using kamaelia::test::job;

namespace {

struct asker : component {
    int n;
    ask_options opt;
    std::optional<result<int>> got;
    std::atomic<int>* done = nullptr;
    asker(int v, ask_options o = {}, std::atomic<int>* d = nullptr) : n(v), opt(o), done(d) {}
    task main() override {
        auto r = co_await ask("doubler", job{n}, opt);
        got.emplace(std::move(r));
        if (done) done->fetch_add(1);
    }
};

std::size_t unanswered(const std::vector<asker*>& v) {
    return static_cast<std::size_t>(std::count_if(v.begin(), v.end(), [](asker* a) { return !a->got; }));
}

doubler& start_doubler(group_fixture& g, std::size_t on, std::uint32_t limit, std::size_t transit = 0) {
    auto& d = g.spawn<doubler>(on);
    d.in().set_limit(limit);
    g.services.register_service("doubler", d, "inbox", transit);
    return d;
}

// A held service on scheduler 0 and `n` askers on scheduler 1, settled:
// the requests wait wherever the bounds put them.
struct held_service {
    doubler& d;
    std::vector<asker*> askers;
};
held_service hold_with_askers(group_fixture& g, std::uint32_t limit, std::size_t transit, int n, ask_options opt = {}) {
    held_service h{start_doubler(g, 0, limit, transit), {}};
    g.settle();
    h.d.hold = true;
    for (int i = 0; i < n; ++i) h.askers.push_back(&g.spawn<asker>(1, i, opt));
    g.settle();
    return h;
}

} // namespace

TEST_CASE("cross ask: a service registered once answers askers on every scheduler", "[service][group]") {
    group_fixture g(3);
    auto& d = start_doubler(g, 0, default_inbox_limit);
    auto& local = g.spawn<asker>(0, 1);
    auto& a1 = g.spawn<asker>(1, 2);
    auto& a2 = g.spawn<asker>(2, 3);
    g.settle();
    for (auto [a, want] : {std::pair{&local, 2}, std::pair{&a1, 4}, std::pair{&a2, 6}}) {
        REQUIRE(a->got);
        REQUIRE(a->got->ok());
        CHECK(**a->got == want);
    }
    CHECK(d.served == 3);
    for (std::size_t i = 0; i < 3; ++i) CHECK(g[i].services().replies().open_count() == 0);
    // Only the home scheduler lists it as its own; the others reach it remotely.
    CHECK(g[0].services().has("doubler"));
    CHECK_FALSE(g[1].services().has("doubler"));
    CHECK(g.services.names() == std::vector<std::string>{"doubler"});
    // A second registration of the name anywhere is refused.
    auto& other = g.spawn<doubler>(1);
    CHECK_THROWS_AS(g.services.register_service("doubler", other, "inbox"), service_already_exists);
}

TEST_CASE("cross ask: requests cross in batches, one wake-up per batch", "[service][group]") {
    group_fixture g(2);
    auto& d = start_doubler(g, 0, default_inbox_limit);
    g.settle();
    d.hold = true;
    std::vector<asker*> askers;
    for (int i = 0; i < 50; ++i) askers.push_back(&g.spawn<asker>(1, i));
    auto posts_before = g[0].stats().posts;
    g.settle();
    // The 50 pushes of one cycle of scheduler 1 cost scheduler 0 one post.
    CHECK(g[0].stats().posts - posts_before == 1);
    CHECK(d.in().size() == 50);
    d.release();
    g.settle();
    CHECK(d.max_batch == 50);
    for (int i = 0; i < 50; ++i) {
        REQUIRE(askers[i]->got);
        CHECK(**askers[i]->got == 2 * i);
    }
    CHECK(g[1].services().replies().open_count() == 0);
}

TEST_CASE("cross ask: a full remote service suspends the asker, or fails fast", "[service][group]") {
    group_fixture g(2);
    auto [d, askers] = hold_with_askers(g, 2, 2, 10);
    // Bounded: 2 in the inbox, 1 with the pump (parked on the full inbox),
    // 2 in transit; the other 5 wait in their own frames.
    CHECK(d.in().size() == 2);
    CHECK(d.in().parked_senders() == 1);
    auto port = g.services.find("doubler");
    REQUIRE(port);
    CHECK(port->queued() == 2);
    CHECK(unanswered(askers) == 10);
    auto& quick = g.spawn<asker>(1, 99, fail_if_full());
    g.settle();
    REQUIRE(quick.got);
    CHECK(quick.got->error().code == service_errc::full);

    d.release();
    g.settle();
    for (int i = 0; i < 10; ++i) {
        REQUIRE(askers[i]->got);
        REQUIRE(askers[i]->got->ok());
        CHECK(**askers[i]->got == 2 * i);
    }
    CHECK(port->queued() == 0);
    CHECK(g[1].services().replies().open_count() == 0);
}

TEST_CASE("cross ask: within() bounds the wait for room and for the answer", "[service][group]") {
    group_fixture g(2);
    auto [d, askers] = hold_with_askers(g, 1, 1, 5, within(5s));
    // 1 in the inbox, 1 with the pump, 1 in transit, 2 waiting for room.
    CHECK(unanswered(askers) == 5);
    g.advance(4s);
    CHECK(unanswered(askers) == 5);
    g.advance(1s);
    for (auto* a : askers) {
        REQUIRE(a->got);
        CHECK(a->got->error().code == service_errc::timeout);
    }
    CHECK(g[1].services().replies().open_count() == 0);
    d.release(); // late answers to askers that gave up: dropped
    g.settle();
    CHECK(d.served == 3);
    auto& later = g.spawn<asker>(1, 7);
    g.settle();
    REQUIRE(later.got);
    CHECK(**later.got == 14);
}

TEST_CASE("cross ask: an asker that ends first leaves nothing behind", "[service][group]") {
    group_fixture g(2);
    auto [d, askers] = hold_with_askers(g, 1, 1, 5);
    auto port = g.services.find("doubler");
    CHECK(port->queued() == 1);
    // In the inbox, with the pump, in transit, and two waiting for room: all go.
    for (auto* a : askers) a->stop();
    g.settle();
    CHECK(g[1].services().replies().open_count() == 0);
    d.release(); // replies to gone askers are dropped (ASan: no frame touched)
    g.settle();
    CHECK(d.served == 3);
    CHECK(port->queued() == 0);

    // A reply in flight: answered on scheduler 0, the asker stops before
    // scheduler 1 runs again.
    auto& a = g.spawn<asker>(1, 4);
    g[1].run_once(); // pushes
    g[0].run_once(); // the pump takes it
    g[0].run_once(); // the service answers
    g[0].run_once();
    a.stop();
    g.settle();
    CHECK(g[1].services().replies().open_count() == 0);
    auto& b = g.spawn<asker>(1, 8);
    g.settle();
    REQUIRE(b.got);
    CHECK(**b.got == 16);
}

TEST_CASE("cross ask: a service that ends fails every pending remote request", "[service][group]") {
    group_fixture g(2);
    auto [d, askers] = hold_with_askers(g, 1, 2, 8);
    CHECK(unanswered(askers) == 8);
    d.stop();
    g.settle();
    for (auto* a : askers) {
        REQUIRE(a->got);
        REQUIRE_FALSE(a->got->ok());
        CHECK(a->got->error().code == service_errc::service_ended);
    }
    CHECK(g[1].services().replies().open_count() == 0);
    CHECK(g.services.names().empty());
    auto& after = g.spawn<asker>(1, 1);
    g.settle();
    REQUIRE(after.got);
    CHECK(after.got->error().code == service_errc::unknown_service);
    // The name is free again, and askers that cached the old one find the new one.
    auto& d2 = start_doubler(g, 1, 4);
    auto& again = g.spawn<asker>(0, 3);
    g.settle();
    REQUIRE(again.got);
    CHECK(**again.got == 6);
    CHECK(d2.served == 1);
}

// ---- real threads ------------------------------------------------------------------

namespace {

// Asks `count` times in a row and sums the answers.
struct loop_asker : component {
    int count;
    long long sum = 0;
    int errors = 0;
    std::atomic<int>* done;
    loop_asker(int c, std::atomic<int>* d) : count(c), done(d) {}
    task main() override {
        for (int i = 0; i < count; ++i) {
            auto r = co_await ask("doubler", job{i});
            if (r) {
                sum += *r;
            } else {
                ++errors;
            }
        }
        done->fetch_add(1);
    }
};

// Polls `pred` until true or the liveness deadline passes.
template <class P>
bool eventually(P pred) {
    auto until = std::chrono::steady_clock::now() + kamaelia::test::liveness_deadline;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > until) return false;
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

// Components the test owns: declared before the group, so the group (and
// its schedulers) go first and these objects after.
struct owned_list {
    std::vector<std::unique_ptr<component>> v;
    template <class C, class... A>
    C& make(A&&... a) {
        v.push_back(std::make_unique<C>(std::forward<A>(a)...));
        return static_cast<C&>(*v.back());
    }
    // The service on scheduler 0 of `g`, registered for the group.
    doubler& service(scheduler_group& g, bool hold, std::uint32_t limit, std::size_t transit) {
        auto& d = make<doubler>();
        d.hold = hold;
        d.activate(g[0]);
        d.in().set_limit(limit);
        g.register_service("doubler", d, "inbox", transit);
        return d;
    }
    // `n` one-shot askers on scheduler `on`, counting into `done`.
    std::vector<asker*> askers(scheduler_group& g, std::size_t on, int n, std::atomic<int>* done) {
        std::vector<asker*> out;
        for (int i = 0; i < n; ++i) {
            auto& a = make<asker>(i, ask_options{}, done);
            a.activate(g[on]);
            out.push_back(&a);
        }
        return out;
    }
};

} // namespace

TEST_CASE("cross ask threads: many askers on two schedulers to one service", "[service][group][threads]") {
    owned_list owned;
    scheduler_group g(2);
    std::atomic<std::size_t> served{0};
    owned.service(g, false, 8, 4).served_total = &served; // small bounds: the askers park often
    std::atomic<int> done{0};
    constexpr int per = 300, each = 8;
    std::vector<loop_asker*> askers;
    for (std::size_t s = 0; s < 2; ++s)
        for (int i = 0; i < each; ++i) {
            auto& a = owned.make<loop_asker>(per, &done);
            a.activate(g[s]);
            askers.push_back(&a);
        }
    g.start();
    REQUIRE(eventually([&] { return done.load() == 2 * each; }));
    g.stop();
    g.join();
    for (auto* a : askers) {
        CHECK(a->errors == 0);
        CHECK(a->sum == static_cast<long long>(per) * (per - 1)); // 2 * (0 + ... + per-1)
    }
    CHECK(served.load() == std::size_t{2 * each * per});
    CHECK(g[0].services().replies().open_count() == 0);
    CHECK(g[1].services().replies().open_count() == 0);
}

TEST_CASE("cross ask threads: a full service suspends askers and resumes them", "[service][group][threads]") {
    owned_list owned;
    scheduler_group g(2);
    auto& d = owned.service(g, true, 2, 2);
    std::atomic<int> done{0};
    std::vector<asker*> askers = owned.askers(g, 1, 12, &done);
    auto& quick = owned.make<asker>(100, fail_if_full(), &done);
    auto port = g.services().find("doubler");
    REQUIRE(port);
    g.start();
    // The transit fills up and stays full: the other askers are parked.
    REQUIRE(eventually([&] { return port->queued() == 2; }));
    std::this_thread::sleep_for(20ms);
    CHECK(done.load() == 0);
    g.post(1, [&] { quick.activate(g[1]); });
    REQUIRE(eventually([&] { return done.load() == 1; }));
    g.post(0, [&] { d.release(); });
    REQUIRE(eventually([&] { return done.load() == 13; }));
    g.stop();
    g.join();
    REQUIRE(quick.got);
    CHECK(quick.got->error().code == service_errc::full);
    for (int i = 0; i < 12; ++i) {
        REQUIRE(askers[i]->got);
        REQUIRE(askers[i]->got->ok());
        CHECK(**askers[i]->got == 2 * i);
    }
    CHECK(g[1].services().replies().open_count() == 0);
}

TEST_CASE("cross ask threads: askers destroyed while queued remotely and while replies fly",
          "[service][group][threads]") {
    owned_list owned;
    scheduler_group g(2);
    auto& d = owned.service(g, true, 4, 4);
    std::vector<asker*> queued = owned.askers(g, 1, 16, nullptr);
    auto port = g.services().find("doubler");
    g.start();
    REQUIRE(eventually([&] { return port->queued() == 4; }));
    // Destroyed while their requests wait in the inbox, the pump, the transit
    // queue or their own frames.
    kamaelia::test::latch_flag stopped;
    g.post(1, [&] {
        for (auto* a : queued) a->stop();
        stopped.set();
    });
    REQUIRE(stopped.wait());
    g.post(0, [&] { d.release(); });
    REQUIRE(eventually([&] { return port->queued() == 0; }));
    // Replies in flight: the service answers while their askers are stopped.
    std::atomic<int> done{0};
    for (int round = 0; round < 20; ++round) {
        kamaelia::test::latch_flag started;
        std::vector<asker*> batch;
        g.post(1, [&] {
            for (int i = 0; i < 8; ++i) {
                auto& a = owned.make<asker>(i, ask_options{}, &done);
                a.activate(g[1]);
                batch.push_back(&a);
            }
            started.set();
        });
        REQUIRE(started.wait());
        kamaelia::test::latch_flag cut;
        g.post(1, [&] {
            for (auto* a : batch) a->stop();
            cut.set();
        });
        REQUIRE(cut.wait());
    }
    // Stopped askers are reaped on their scheduler's next cycle: then no
    // entry is left open.
    CHECK(eventually([&] { return g[1].services().replies().open_count() == 0; }));
    g.stop();
    g.join();
}

TEST_CASE("cross ask threads: a service that ends fails every pending remote request", "[service][group][threads]") {
    owned_list owned;
    scheduler_group g(2);
    auto& d = owned.service(g, true, 2, 3);
    std::atomic<int> done{0};
    std::vector<asker*> askers = owned.askers(g, 1, 10, &done);
    auto port = g.services().find("doubler");
    g.start();
    REQUIRE(eventually([&] { return port->queued() == 3; }));
    // Every asker must have asked before the service ends (one that asks
    // after finds no service: unknown_service, rightly). Scheduler 1 ran
    // them all once it has answered two posts made after that point (a
    // loaded machine may preempt it between askers).
    for (int round = 0; round < 2; ++round) {
        kamaelia::test::latch_flag turned;
        g.post(1, [&] { turned.set(); });
        REQUIRE(turned.wait());
    }
    g.post(0, [&] { d.stop(); });
    REQUIRE(eventually([&] { return done.load() == 10; }));
    g.stop();
    g.join();
    for (auto* a : askers) {
        REQUIRE(a->got);
        CHECK(a->got->error().code == service_errc::service_ended);
    }
    CHECK(g[1].services().replies().open_count() == 0);
}

TEST_CASE("cross ask threads: stopping the group with requests in flight", "[service][group][threads]") {
    for (int round = 0; round < 5; ++round) {
        owned_list owned;
        std::atomic<int> done{0};
        std::atomic<std::size_t> served{0};
        {
            scheduler_group g(2);
            owned.service(g, false, 4, 4).served_total = &served;
            for (std::size_t s = 0; s < 2; ++s)
                for (int i = 0; i < 4; ++i) g[s].spawn<loop_asker>(1'000'000, &done);
            g.start();
            REQUIRE(eventually([&] { return served.load() > 100; })); // requests flow both ways
            std::this_thread::sleep_for(std::chrono::milliseconds(2 * round));
            g.stop();
            g.join();
        } // the schedulers go with requests in transit, in inboxes and in flight
        CHECK(done.load() == 0);
    }
}
