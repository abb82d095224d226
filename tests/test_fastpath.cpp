// The send/recv fast path (a trivially copyable payload that fits inline,
// through "outbox"/"inbox", built straight in the target slot) must behave
// exactly as the general path: every delivery policy, a full inbox, a type
// mismatch, payloads that take the general path, links changed between
// sends (no stale final inbox), chassis passthrough chains, and the thread
// bridge and cross-scheduler links.
#include "chassis_support.hpp"
#include "group_fixture.hpp"
#include "thread_support.hpp"
#include "xlink_support.hpp"

#include <kamaelia/chassis/pipeline.hpp>
#include <kamaelia/core/scheduler_group.hpp>
#include <kamaelia/core/threaded_component.hpp>

#include <catch2/catch.hpp>

#include <array>
#include <atomic>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

using namespace kamaelia;

namespace {

// recv<int> and send(int): both on the fast path.
struct int_relay : component {
    task main() override {
        while (!shutdown_requested()) {
            while (auto v = recv<int>()) co_await send(*v);
            co_await wait_any();
        }
        forward_shutdown();
    }
};

// Sends its values with co_await send, recording each result, then
// producer_finished out of "signal".
template <class T>
struct sender : component {
    std::vector<T> values;
    std::vector<bool> results;
    explicit sender(std::vector<T> v) : values(std::move(v)) {}
    task main() override {
        for (auto& v : values) results.push_back(co_await send(v));
        forward_shutdown();
    }
};

// Never reads on its own: the test calls recv() on it directly.
struct idle : component {
    task main() override { co_await wait_for("control"); }
};

struct big {
    std::array<char, 64> bytes; // trivially copyable, too big to live inline: boxed
};
struct pair_of_ints {
    int a, b;
};

static_assert(detail::fast_payload<int>);
static_assert(detail::fast_payload<pair_of_ints>);
static_assert(!detail::fast_payload<std::string>);
static_assert(!detail::fast_payload<big>);
static_assert(!detail::fast_payload<shared<int>>);

std::vector<int> ints(int from, int to) { return test::range_vec(from, to); }

std::vector<std::string> strings(int from, int to) {
    std::vector<std::string> v;
    for (int i = from; i < to; ++i) v.push_back(std::to_string(i));
    return v;
}

// Runs 6 values into a collector bounded at 3 with policy `p`; returns the
// sender's results and what the collector got, as strings (so the fast path
// with ints and the general path with strings compare equal).
struct policy_outcome {
    std::vector<bool> results;
    std::vector<std::string> got;
    std::size_t controls = 0;
    bool sender_parked_while_full = false;
    bool operator==(const policy_outcome&) const = default;
};

template <class T>
policy_outcome run_policy(delivery_policy p) {
    test::fixture f;
    test::collector c;
    c.stop_on_end = false;
    c.in().set_limit(3);
    std::vector<T> values;
    if constexpr (std::is_same_v<T, int>) {
        values = ints(0, 6);
    } else {
        values = strings(0, 6);
    }
    sender<T> s(values);
    component::link({s, "outbox"}, {c, "inbox"}, p);
    f.activate(s);
    f.settle();
    policy_outcome o;
    o.sender_parked_while_full = !s.finished() && c.in().parked_senders() == 1 && c.in().size() == 3;
    f.activate(c);
    f.settle();
    REQUIRE(s.finished());
    o.results = s.results;
    for (auto& m : c.items) {
        if (auto* i = m.peek<int>()) o.got.push_back(std::to_string(*i));
        if (auto* t = m.peek<std::string>()) o.got.push_back(*t);
    }
    o.controls = c.controls.size();
    c.stop();
    f.settle();
    return o;
}

} // namespace

TEST_CASE("fastpath: ints arrive in order, counted, and an empty inbox gives nothing", "[core][fastpath]") {
    test::fixture f;
    auto& r = f.spawn<int_relay>();
    auto& c = f.spawn<test::collector>();
    component::link({r, "outbox"}, {c, "inbox"});
    for (int i = 0; i < 1000; ++i) deliver(r, "inbox", message(i)); // past the bound: deliver forces
    f.settle();
    REQUIRE(c.values<int>() == ints(0, 1000));
    REQUIRE(r.sent() == 1000);
    REQUIRE(c.in().delivered() == 1000);
    REQUIRE(r.in().empty());
    REQUIRE_FALSE(r.recv<int>().has_value());
}

TEST_CASE("fastpath: every delivery policy gives the general path's outcome", "[core][fastpath][flow]") {
    SECTION("suspend: the sender waits for room, then everything arrives in order") {
        auto fast = run_policy<int>(delivery_policy::suspend);
        CHECK(fast.sender_parked_while_full);
        CHECK(fast.results == std::vector<bool>(6, true));
        CHECK(fast.got == strings(0, 6));
        CHECK(fast == run_policy<std::string>(delivery_policy::suspend));
    }
    SECTION("drop_newest: the three that do not fit are refused") {
        auto fast = run_policy<int>(delivery_policy::drop_newest);
        CHECK_FALSE(fast.sender_parked_while_full);
        CHECK(fast.results == std::vector<bool>{true, true, true, false, false, false});
        CHECK(fast.got == strings(0, 3));
        CHECK(fast == run_policy<std::string>(delivery_policy::drop_newest));
    }
    SECTION("drop_oldest: the newest three are kept") {
        auto fast = run_policy<int>(delivery_policy::drop_oldest);
        CHECK(fast.results == std::vector<bool>(6, true));
        CHECK(fast.got == strings(3, 6));
        CHECK(fast == run_policy<std::string>(delivery_policy::drop_oldest));
    }
    SECTION("fail: the link is cut, the receiver told, later sends discarded") {
        auto fast = run_policy<int>(delivery_policy::fail);
        // The fourth is refused and cuts the link; the outbox is then
        // unlinked, and an unlinked outbox discards (true, as in Axon).
        CHECK(fast.results == std::vector<bool>{true, true, true, false, true, true});
        CHECK(fast.got == strings(0, 3));
        CHECK(fast.controls == 1);
        CHECK(fast == run_policy<std::string>(delivery_policy::fail));
    }
}

TEST_CASE("fastpath: a full inbox parks the sender, each recv hands over the next message in order",
          "[core][fastpath][flow]") {
    test::fixture f;
    idle r;
    r.in().set_limit(2);
    sender<int> s(ints(0, 5));
    component::link({s, "outbox"}, {r, "inbox"});
    f.activate(r);
    f.activate(s);
    f.settle();
    REQUIRE(r.in().size() == 2);
    REQUIRE(r.in().parked_senders() == 1);
    REQUIRE(s.sent() == 2);
    std::vector<int> got;
    for (int i = 0; i < 5; ++i) {
        auto v = r.recv<int>();
        REQUIRE(v);
        got.push_back(*v);
        // The parked message entered the freed slot at once (inline recv's
        // refill), so the bound is kept and nothing is reordered.
        REQUIRE(r.in().parked_senders() == 0);
        REQUIRE(r.in().size() <= 2);
        f.settle(); // the woken sender sends until it parks again
    }
    REQUIRE_FALSE(r.recv<int>().has_value());
    REQUIRE(got == ints(0, 5));
    REQUIRE(s.finished());
    REQUIRE(s.results == std::vector<bool>(5, true));
    REQUIRE(s.sent() == 5);
    r.stop();
}

TEST_CASE("fastpath: recv of another type is the same type_mismatch, and the message stays", "[core][fastpath]") {
    idle r;
    deliver(r, "inbox", message(7));
    REQUIRE_THROWS_AS(r.recv<long>(), type_mismatch);
    REQUIRE_THROWS_WITH(r.recv<long>(), "recv<long>: the message holds int");
    REQUIRE_THROWS_WITH(r.recv<pair_of_ints>(), Catch::Contains("the message holds int"));
    REQUIRE(r.in().size() == 1);
    REQUIRE(*r.recv<int>() == 7);

    deliver(r, "inbox", message(std::string("text")));
    REQUIRE_THROWS_AS(r.recv<int>(), type_mismatch);
    REQUIRE_THROWS_WITH(r.recv<int>(), Catch::StartsWith("recv<int>: the message holds std::"));
    REQUIRE(*r.recv<std::string>() == "text");
    REQUIRE(r.in().empty());
}

TEST_CASE("fastpath: shared, boxed and non-trivially-copyable payloads take the general path intact",
          "[core][fastpath]") {
    test::fixture f;
    auto& c = f.spawn<test::collector>();
    struct mixed : component {
        task main() override {
            co_await send(pair_of_ints{1, 2});
            big b{};
            b.bytes[63] = 'z';
            co_await send(b);
            co_await send(std::string(100, 'x'));
            co_await send(make_shared_message(5));
            co_await send(3);
        }
    };
    auto& m = f.spawn<mixed>();
    component::link({m, "outbox"}, {c, "inbox"});
    f.settle();
    REQUIRE(c.items.size() == 5);
    REQUIRE(c.items[0].peek<pair_of_ints>()->b == 2);
    REQUIRE(c.items[1].peek<big>()->bytes[63] == 'z');
    REQUIRE(*c.items[2].peek<std::string>() == std::string(100, 'x'));
    REQUIRE(c.items[3].is_shared());
    REQUIRE(*c.items[3].peek<int>() == 5);
    REQUIRE(*c.items[4].peek<int>() == 3);

    // recv<int> of a shared int (not inline: the general path) takes the value.
    idle r;
    deliver(r, "inbox", message(make_shared_message(9)));
    deliver(r, "inbox", message(10));
    big b{};
    b.bytes[0] = 'a';
    deliver(r, "inbox", message(b));
    REQUIRE(*r.recv<int>() == 9);
    REQUIRE(*r.recv<int>() == 10);
    REQUIRE(r.recv<big>()->bytes[0] == 'a');
}

TEST_CASE("fastpath: a link changed between sends sends to the new target (no stale final inbox)",
          "[core][fastpath][links]") {
    test::fixture f;
    SECTION("unlink, then link the outbox elsewhere") {
        auto& r = f.spawn<int_relay>();
        auto& a = f.spawn<test::collector>();
        auto& b = f.spawn<test::collector>();
        linkage& l = component::link({r, "outbox"}, {a, "inbox"});
        deliver(r, "inbox", message(1));
        f.settle();
        component::unlink(l);
        deliver(r, "inbox", message(2)); // unlinked: discarded
        f.settle();
        component::link({r, "outbox"}, {b, "inbox"});
        deliver(r, "inbox", message(3));
        f.settle();
        REQUIRE(a.values<int>() == std::vector<int>{1});
        REQUIRE(b.values<int>() == std::vector<int>{3});
    }
    SECTION("the receiving inbox gains, then loses, a passthrough link downstream") {
        auto& r = f.spawn<int_relay>();
        idle q;
        f.activate(q);
        auto& c = f.spawn<test::collector>();
        component::link({r, "outbox"}, {q, "inbox"});
        deliver(r, "inbox", message(1));
        f.settle();
        REQUIRE(q.in().size() == 1);
        linkage& pass = component::link({q, "inbox"}, {c, "inbox"}); // 1 moves on
        deliver(r, "inbox", message(2));
        f.settle();
        REQUIRE(q.in().empty());
        REQUIRE(c.values<int>() == std::vector<int>{1, 2});
        component::unlink(pass);
        deliver(r, "inbox", message(3));
        f.settle();
        REQUIRE(c.values<int>() == std::vector<int>{1, 2});
        REQUIRE(*q.recv<int>() == 3);
        q.stop();
    }
    SECTION("a link further down an outbox→outbox chain is replaced") {
        auto& r = f.spawn<int_relay>();
        idle p; // its "outbox" only passes through
        f.activate(p);
        auto& a = f.spawn<test::collector>();
        auto& b = f.spawn<test::collector>();
        component::link({r, "outbox"}, {p, "outbox"});
        linkage& l = component::link({p, "outbox"}, {a, "inbox"});
        deliver(r, "inbox", message(1));
        f.settle();
        component::unlink(l);
        component::link({p, "outbox"}, {b, "inbox"});
        deliver(r, "inbox", message(2));
        f.settle();
        REQUIRE(a.values<int>() == std::vector<int>{1});
        REQUIRE(b.values<int>() == std::vector<int>{2});
        p.stop();
    }
    SECTION("the receiver is destroyed between sends") {
        auto& r = f.spawn<int_relay>();
        auto a = std::make_unique<test::collector>();
        f.activate(*a);
        component::link({r, "outbox"}, {*a, "inbox"});
        deliver(r, "inbox", message(1));
        f.settle();
        REQUIRE(a->values<int>() == std::vector<int>{1});
        a.reset(); // its links go: r's outbox is unlinked
        deliver(r, "inbox", message(2));
        f.settle();
        REQUIRE_FALSE(r.out().link());
        auto& b = f.spawn<test::collector>();
        component::link({r, "outbox"}, {b, "inbox"});
        deliver(r, "inbox", message(3));
        f.settle();
        REQUIRE(b.values<int>() == std::vector<int>{3});
    }
}

TEST_CASE("fastpath: a pipeline of relays passes ints through its inbox and outbox in order",
          "[core][fastpath][pipeline]") {
    test::fixture f;
    test::collector col;
    test::feeder<int> in(ints(0, 2000)); // more than an inbox holds: back-pressure on the way
    pipeline p(int_relay{}, int_relay{}, int_relay{});
    component::link({in, "outbox"}, {p, "inbox"});
    component::link({in, "signal"}, {p, "control"});
    component::link({p, "outbox"}, {col, "inbox"});
    component::link({p, "signal"}, {col, "control"});
    f.activate(in);
    f.activate(p);
    f.activate(col);
    f.settle();
    REQUIRE(col.finished());
    REQUIRE(col.values<int>() == ints(0, 2000));
    REQUIRE(col.controls.size() == 1);
    REQUIRE(col.controls[0].kind == ipc_kind::producer_finished);
}

namespace {

struct int_sink : component {
    std::atomic<bool>* done;
    std::vector<int> got;
    explicit int_sink(std::atomic<bool>* d = nullptr) : done(d) {}
    task main() override {
        while (!shutdown_requested()) {
            while (auto v = recv<int>()) got.push_back(*v);
            co_await wait_any();
        }
        if (done) done->store(true);
    }
};

struct threaded_int_producer : threaded_component {
    int n;
    explicit threaded_int_producer(int count) : threaded_component(8), n(count) {}
    void thread_main() override {
        for (int i = 0; i < n; ++i) send(i);
        forward_shutdown();
    }
};

struct threaded_int_consumer : threaded_component {
    std::vector<int> got; // read after the thread was joined
    threaded_int_consumer() : threaded_component(8) {}
    void thread_main() override {
        while (!shutdown_requested()) {
            while (auto v = recv<int>()) got.push_back(*v);
            wait();
        }
    }
};

} // namespace

TEST_CASE("fastpath: across schedulers the general path carries ints in order through tiny bounds",
          "[core][fastpath][xlink]") {
    test::group_fixture g(2);
    auto& src = g.spawn<sender<int>>(0, ints(0, 300));
    std::vector<component*> chain{&src};
    // Two relays on scheduler 0, two on 1, one on 0: fast hops and crossings.
    for (std::size_t on : {0u, 0u, 1u, 1u, 0u}) {
        auto& r = g.spawn<int_relay>(on);
        r.in().set_limit(2);
        chain.push_back(&r);
    }
    auto& sink = g.spawn<int_sink>(1);
    sink.in().set_limit(2);
    chain.push_back(&sink);
    for (std::size_t i = 0; i + 1 < chain.size(); ++i) {
        bool crosses = component::link({*chain[i], "outbox"}, {*chain[i + 1], "inbox"}).cross_scheduler();
        REQUIRE(crosses == (chain[i]->sched() != chain[i + 1]->sched()));
        component::link({*chain[i], "signal"}, {*chain[i + 1], "control"});
    }
    g.settle();
    REQUIRE(src.finished());
    REQUIRE(src.results == std::vector<bool>(300, true));
    REQUIRE(sink.finished());
    REQUIRE(sink.got == ints(0, 300));
}

TEST_CASE("fastpath: a pipeline alternating between two scheduler threads", "[core][fastpath][xlink][threads]") {
    constexpr int n = 20000;
    std::atomic<bool> done{false};
    std::vector<std::unique_ptr<component>> kept;
    scheduler_group g(2, group_options{.pin = false, .until_idle = true});
    auto& src = test::keep<sender<int>>(kept, g[0], ints(0, n));
    component* prev = &src;
    for (int i = 0; i < 6; ++i) {
        // Two relays a scheduler in a row, then a crossing: fast hops and remote ones.
        auto& r = test::keep<int_relay>(kept, g[static_cast<std::size_t>((i / 2) % 2)]);
        r.in().set_limit(static_cast<std::uint32_t>(1 + i % 3));
        component::link({*prev, "outbox"}, {r, "inbox"});
        component::link({*prev, "signal"}, {r, "control"});
        prev = &r;
    }
    auto& sink = test::keep<int_sink>(kept, g[1], &done);
    component::link({*prev, "outbox"}, {sink, "inbox"});
    component::link({*prev, "signal"}, {sink, "control"});
    g.start();
    REQUIRE(test::eventually([&] { return done.load(); }));
    g.wait(0);
    g.wait(1);
    g.join();
    REQUIRE(src.results == std::vector<bool>(n, true));
    REQUIRE(sink.got == ints(0, n));
}

TEST_CASE("fastpath: through the thread bridge both ways, in order", "[core][fastpath][threads]") {
    constexpr int n = 5000;
    scheduler s;
    threaded_int_producer p(n);
    int_relay r1, r2;
    threaded_int_consumer c;
    r1.in().set_limit(4);
    r2.in().set_limit(4);
    p.activate(s);
    r1.activate(s);
    r2.activate(s);
    c.activate(s);
    component::link({p, "outbox"}, {r1, "inbox"});
    component::link({p, "signal"}, {r1, "control"});
    component::link({r1, "outbox"}, {r2, "inbox"});
    component::link({r1, "signal"}, {r2, "control"});
    component::link({r2, "outbox"}, {c, "inbox"});
    component::link({r2, "signal"}, {c, "control"});
    REQUIRE(test::run_within(s));
    REQUIRE(c.got == ints(0, n));
    REQUIRE_FALSE(p.failed());
    REQUIRE_FALSE(c.failed());
}
