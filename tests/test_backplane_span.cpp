// backplane_span: one backplane across several schedulers. Logic on the
// one-thread group fixture, then the same across real threads (TSan).
#include <kamaelia/chassis/backplane.hpp>
#include <kamaelia/chassis/backplane_span.hpp>
#include <kamaelia/core/scheduler_group.hpp>

#include "fixture.hpp"
#include "group_fixture.hpp"
#include "thread_support.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

using namespace kamaelia;
using kamaelia::test::collector;
using kamaelia::test::feeder;
using kamaelia::test::group_fixture;

namespace {

std::vector<std::string> lines(const std::string& tag, int n) {
    std::vector<std::string> v;
    for (int i = 0; i < n; ++i) v.push_back(tag + std::to_string(i));
    return v;
}

// The strings of `got` that start with `tag`, in arrival order.
std::vector<std::string> from(const std::vector<std::string>& got, const std::string& tag) {
    std::vector<std::string> v;
    for (const auto& s : got)
        if (s.rfind(tag, 0) == 0) v.push_back(s);
    return v;
}

// One scheduler's share of a spanned backplane: its copy of the backplane,
// the span's member, a subscriber into a collector.
struct site {
    collector* col = nullptr;
    subscribe_to* sub = nullptr;
};

site join_span(group_fixture& g, std::size_t i, backplane_span& span) {
    g.spawn<backplane>(i, span.backplane_name(), delivery_policy::drop_oldest);
    auto m = span.member(i);
    m->activate(g[i]);
    g.owned.push_back(std::move(m));
    site s;
    s.sub = &g.spawn<subscribe_to>(i, span.backplane_name());
    s.sub->set_max_bytes(1 << 20);
    s.sub->in("inbox").set_limit(100000);
    s.col = &g.spawn<collector>(i);
    component::link({*s.sub, "outbox"}, {*s.col, "inbox"});
    return s;
}

void publish(group_fixture& g, std::size_t i, const std::string& name, std::vector<std::string> v) {
    auto& src = g.spawn<feeder<std::string>>(i, std::move(v), false);
    auto& pub = g.spawn<publish_to>(i, name);
    component::link({src, "outbox"}, {pub, "inbox"});
}

} // namespace

TEST_CASE("backplane_span: a publisher on either scheduler reaches subscribers on both, in order, once",
          "[group][backplane]") {
    group_fixture g(2);
    auto span = std::make_shared<backplane_span>("CHAT", 2);
    site a = join_span(g, 0, *span);
    site b = join_span(g, 1, *span);
    g.settle(); // everyone subscribed
    publish(g, 0, "CHAT", lines("a", 300));
    publish(g, 1, "CHAT", lines("b", 300));
    g.settle();
    for (site* s : {&a, &b}) {
        auto got = s->col->values<std::string>();
        CHECK(got.size() == 600); // nothing echoed back, nothing lost
        CHECK(from(got, "a") == lines("a", 300));
        CHECK(from(got, "b") == lines("b", 300));
    }
    // One hop per message per other scheduler, never per subscriber.
    CHECK(span->carried() == 600);
    CHECK(span->dropped() == 0);
    // Wake-ups are per batch, not per message.
    CHECK(span->wakeups() >= 2);
    CHECK(span->wakeups() <= 600 / 32);
}

TEST_CASE("backplane_span: several subscribers on a scheduler cost one hop", "[group][backplane]") {
    group_fixture g(2);
    auto span = std::make_shared<backplane_span>("CHAT", 2);
    join_span(g, 0, *span);
    std::vector<site> far{join_span(g, 1, *span)};
    for (int i = 0; i < 4; ++i) {
        site s;
        s.sub = &g.spawn<subscribe_to>(1, "CHAT");
        s.col = &g.spawn<collector>(1);
        component::link({*s.sub, "outbox"}, {*s.col, "inbox"});
        far.push_back(s);
    }
    g.settle();
    publish(g, 0, "CHAT", lines("x", 50));
    g.settle();
    for (auto& s : far) CHECK(s.col->values<std::string>() == lines("x", 50));
    CHECK(span->carried() == 50);
}

TEST_CASE("backplane_span: a scheduler that does not run loses its oldest messages, bounded in bytes",
          "[group][backplane]") {
    group_fixture g(2);
    backplane_span::options o;
    o.max_bytes = 20 * 70; // about twenty short lines
    auto span = std::make_shared<backplane_span>("CHAT", 2, o);
    site a = join_span(g, 0, *span);
    site b = join_span(g, 1, *span);
    g.settle();
    publish(g, 0, "CHAT", lines("m", 500));
    // Only scheduler 0 runs: its publisher and subscriber never wait for 1.
    g[0].run_until_idle();
    CHECK(a.col->values<std::string>() == lines("m", 500));
    g.settle();
    auto got = b.col->values<std::string>();
    REQUIRE(!got.empty());
    CHECK(got.size() <= 21);
    CHECK(got.back() == "m499"); // the newest survive
    CHECK(std::is_sorted(got.begin(), got.end(), [](const std::string& x, const std::string& y) {
        return std::stoi(x.substr(1)) < std::stoi(y.substr(1));
    }));
    CHECK(span->dropped() == 500 - got.size());
}

TEST_CASE("backplane_span: drop_newest keeps what came first", "[group][backplane]") {
    group_fixture g(2);
    backplane_span::options o;
    o.max_bytes = 20 * 70;
    o.overflow = delivery_policy::drop_newest;
    auto span = std::make_shared<backplane_span>("CHAT", 2, o);
    join_span(g, 0, *span);
    site b = join_span(g, 1, *span);
    g.settle();
    publish(g, 0, "CHAT", lines("m", 500));
    g[0].run_until_idle();
    g.settle();
    auto got = b.col->values<std::string>();
    REQUIRE(!got.empty());
    CHECK(got.size() <= 21);
    CHECK(got.front() == "m0");
    auto sent = lines("m", 500);
    CHECK(got == std::vector<std::string>(sent.begin(), sent.begin() + static_cast<std::ptrdiff_t>(got.size())));
    CHECK(span->dropped() == 500 - got.size());
}

TEST_CASE("backplane_span: the span's end on one scheduler leaves the others serving", "[group][backplane]") {
    group_fixture g(3);
    auto span = std::make_shared<backplane_span>("CHAT", 3);
    site s0 = join_span(g, 0, *span);
    join_span(g, 1, *span);
    site s2 = join_span(g, 2, *span);
    g.settle();
    // Scheduler 1's backplane ends (its member with it).
    deliver(backplane::find(g[1], "CHAT"), "control", message(shutdown_microprocess("test")));
    g.settle();
    publish(g, 0, "CHAT", lines("z", 10));
    g.settle();
    CHECK(s2.col->values<std::string>() == lines("z", 10));
    CHECK(s0.col->values<std::string>() == lines("z", 10));
    CHECK(span->carried() == 10); // nothing queued for the scheduler that left
}

namespace {

// Counts the lines it receives per tag; done once it has `want` of them.
struct tally : component {
    std::size_t want;
    std::atomic<int>* done;
    std::map<char, std::vector<int>> seen;
    tally(std::size_t n, std::atomic<int>* d) : want(n), done(d) {}
    task main() override {
        std::size_t got = 0;
        while (got < want) {
            while (auto s = recv<std::string>()) {
                seen[(*s)[0]].push_back(std::stoi(s->substr(1)));
                ++got;
            }
            if (got < want) co_await wait_any();
        }
        done->fetch_add(1);
    }
};

} // namespace

TEST_CASE("backplane_span: publishers and subscribers on two threads", "[group][backplane][threads]") {
    constexpr int n = 3000;
    std::atomic<int> done{0};
    scheduler_group g(2);
    backplane_span::options o;
    o.max_bytes = 64 << 20; // nothing may be lost here: the bound is never reached
    auto span = std::make_shared<backplane_span>("CHAT", 2, o);
    // Ours, not the schedulers': read after the threads have stopped.
    std::vector<std::unique_ptr<component>> keep;
    std::vector<tally*> tallies;
    std::vector<subscribe_to*> subs;
    for (std::size_t i = 0; i < 2; ++i) {
        auto bp = std::make_unique<backplane>("CHAT");
        bp->activate(g[i]);
        auto member = span->member(i);
        member->activate(g[i]);
        auto sub = std::make_unique<subscribe_to>("CHAT");
        sub->set_max_bytes(64 << 20);
        sub->in("inbox").set_limit(1 << 20);
        auto t = std::make_unique<tally>(2 * n, &done);
        component::link({*sub, "outbox"}, {*t, "inbox"});
        sub->activate(g[i]);
        t->activate(g[i]);
        subs.push_back(sub.get());
        tallies.push_back(t.get());
        keep.push_back(std::move(bp));
        keep.push_back(std::move(member));
        keep.push_back(std::move(sub));
        keep.push_back(std::move(t));
    }
    g.start();
    // Publish only once both sides listen (a late subscriber misses messages).
    auto deadline = std::chrono::steady_clock::now() + test::liveness_deadline;
    for (;;) {
        std::atomic<int> ready{0};
        test::latch_flag asked[2];
        for (std::size_t i = 0; i < 2; ++i)
            g.post(i, [&, i] {
                if (subs[i]->subscribed() && span->attached(i)) ready.fetch_add(1);
                asked[i].set();
            });
        REQUIRE(asked[0].wait());
        REQUIRE(asked[1].wait());
        if (ready.load() == 2) break;
        REQUIRE(std::chrono::steady_clock::now() < deadline);
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    std::vector<std::unique_ptr<component>> made[2]; // each touched on its own thread, then after join
    for (std::size_t i = 0; i < 2; ++i) {
        g.post(i, [&g, &made, i] {
            auto src = std::make_unique<feeder<std::string>>(lines(i == 0 ? "a" : "b", n), false);
            auto pub = std::make_unique<publish_to>("CHAT");
            component::link({*src, "outbox"}, {*pub, "inbox"});
            pub->activate(g[i]);
            src->activate(g[i]);
            made[i].push_back(std::move(pub));
            made[i].push_back(std::move(src));
        });
    }
    while (done.load() < 2 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    g.join();
    REQUIRE(done.load() == 2);
    std::vector<int> in_order(n);
    for (int i = 0; i < n; ++i) in_order[i] = i;
    for (tally* t : tallies) {
        CHECK(t->seen['a'] == in_order);
        CHECK(t->seen['b'] == in_order);
    }
    CHECK(span->dropped() == 0);
    CHECK(span->carried() == 2 * n);
    CHECK(span->wakeups() <= span->carried());
}
