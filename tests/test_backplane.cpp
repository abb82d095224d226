// backplane, publish_to, subscribe_to (docs/ORIGINAL.md, Chassis: backplane).
#include <kamaelia/chassis/backplane.hpp>
#include <kamaelia/core/services.hpp>

#include "fixture.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

using namespace kamaelia;
using kamaelia::test::collector;
using kamaelia::test::feeder;
using kamaelia::test::fixture;

namespace {

// a.outbox → b.inbox and a.signal → b.control.
void chain(component& a, component& b) {
    component::link({a, "outbox"}, {b, "inbox"});
    component::link({a, "signal"}, {b, "control"});
}

std::vector<int> iota(int from, int to) {
    std::vector<int> v;
    for (int i = from; i <= to; ++i) v.push_back(i);
    return v;
}

// Records the address of every payload it receives as a shared string.
struct shared_collector : component {
    std::vector<shared<std::string>> got;
    task main() override {
        while (!shutdown_requested()) {
            while (auto s = recv<shared<std::string>>()) got.push_back(std::move(*s));
            co_await wait_any();
        }
    }
};

using kamaelia::test::gate;

} // namespace

TEST_CASE("backplane: a late subscriber misses earlier messages", "[backplane]") {
    fixture f;
    backplane bp("NEWS");
    f.activate(bp);
    subscribe_to early("NEWS");
    collector early_c;
    chain(early, early_c);
    f.activate(early);
    f.activate(early_c);
    f.settle();
    REQUIRE(bp.subscribers() == 1);

    publish_to pub("NEWS");
    feeder<int> src(iota(1, 3), false);
    chain(src, pub);
    f.activate(pub);
    f.activate(src);
    f.settle();

    subscribe_to late("NEWS");
    collector late_c;
    chain(late, late_c);
    f.activate(late);
    f.activate(late_c);
    f.settle();
    REQUIRE(bp.subscribers() == 2);

    feeder<int> more(iota(4, 6), false);
    component::link({more, "outbox"}, {pub, "inbox"});
    f.activate(more);
    f.settle();

    CHECK(early_c.values<int>() == iota(1, 6));
    CHECK(late_c.values<int>() == iota(4, 6));
    CHECK(bp.published() == 6);
    CHECK(bp.delivered() == 9);
    CHECK(bp.dropped() == 0);
}

TEST_CASE("backplane: a publisher ending does not stop the backplane", "[backplane]") {
    fixture f;
    backplane bp("B");
    f.activate(bp);
    subscribe_to sub("B");
    collector c;
    chain(sub, c);
    f.activate(sub);
    f.activate(c);
    f.settle();

    publish_to first("B");
    collector first_signal;
    feeder<int> src1({1, 2});
    chain(src1, first);
    component::link({first, "signal"}, {first_signal, "control"});
    f.activate(first);
    f.activate(first_signal);
    f.activate(src1);
    f.settle();
    CHECK(first.finished());
    REQUIRE(first_signal.controls.size() == 1);
    CHECK(first_signal.controls[0].kind == ipc_kind::producer_finished);
    CHECK_FALSE(bp.finished());
    CHECK_FALSE(sub.finished());

    // A shutdown of another publisher does not reach the backplane either.
    publish_to second("B");
    feeder<int> src2({3, 4}, false);
    chain(src2, second);
    f.activate(second);
    f.activate(src2);
    f.settle();
    deliver(second, "control", message(shutdown_microprocess()));
    f.settle();
    CHECK(second.finished());
    CHECK_FALSE(bp.finished());
    CHECK(c.values<int>() == std::vector<int>{1, 2, 3, 4});
    CHECK(c.controls.empty());

    // A publisher that arrives later still gets through.
    publish_to third("B");
    feeder<int> src3({5});
    chain(src3, third);
    f.activate(third);
    f.activate(src3);
    f.settle();
    CHECK(c.values<int>() == std::vector<int>{1, 2, 3, 4, 5});
}

TEST_CASE("backplane: its shutdown ends every subscriber", "[backplane]") {
    auto kind = GENERATE(ipc_kind::shutdown_microprocess, ipc_kind::producer_finished);
    fixture f;
    backplane bp("B");
    f.activate(bp);
    collector bp_signal;
    component::link({bp, "signal"}, {bp_signal, "control"});
    f.activate(bp_signal);
    std::vector<std::unique_ptr<subscribe_to>> subs;
    std::vector<std::unique_ptr<collector>> sinks;
    for (int i = 0; i < 3; ++i) {
        subs.push_back(std::make_unique<subscribe_to>("B"));
        sinks.push_back(std::make_unique<collector>());
        chain(*subs.back(), *sinks.back());
        f.activate(*subs.back());
        f.activate(*sinks.back());
    }
    f.settle();
    REQUIRE(bp.subscribers() == 3);

    deliver(bp, "control", message(ipc{kind, "closing", 0}));
    f.settle();
    CHECK(bp.finished());
    CHECK(bp.subscribers() == 0);
    REQUIRE(bp_signal.controls.size() == 1);
    CHECK(bp_signal.controls[0].kind == kind);
    for (int i = 0; i < 3; ++i) {
        CHECK(subs[i]->finished());
        CHECK_FALSE(subs[i]->subscribed());
        REQUIRE(sinks[i]->controls.size() == 1);
        CHECK(sinks[i]->controls[0].kind == kind);
    }
    // The name is free again: a new backplane can take it.
    CHECK_FALSE(f.sched.services().has(backplane::service_name("B")));
    backplane again("B");
    CHECK_NOTHROW(f.activate(again));
}

TEST_CASE("backplane: a second backplane with the same name fails clearly", "[backplane]") {
    fixture f;
    backplane one("DUP");
    f.activate(one);
    backplane two("DUP");
    CHECK_THROWS_AS(f.activate(two), service_already_exists);
    CHECK(two.state() == component_state::created);
    // Another scheduler has its own names.
    fixture g;
    backplane three("DUP");
    CHECK_NOTHROW(g.activate(three));
}

TEST_CASE("backplane: suspend is refused as an overflow policy", "[backplane]") {
    CHECK_THROWS_AS(backplane("X", delivery_policy::suspend), bad_state);
    CHECK_THROWS_AS(subscribe_to("X", delivery_policy::suspend), bad_state);
}

TEST_CASE("backplane: publishing or subscribing without a backplane fails clearly", "[backplane]") {
    fixture f;
    publish_to pub("NOPE");
    subscribe_to sub("NOPE");
    collector pub_signal, sub_signal;
    component::link({pub, "signal"}, {pub_signal, "control"});
    component::link({sub, "signal"}, {sub_signal, "control"});
    f.activate(pub_signal);
    f.activate(sub_signal);
    f.activate(pub);
    f.activate(sub);
    f.settle();
    CHECK(pub.failed());
    CHECK(sub.failed());
    CHECK_THAT(pub.error_text(), Catch::Contains("no backplane \"NOPE\""));
    CHECK_THAT(sub.error_text(), Catch::Contains("no backplane \"NOPE\""));
    REQUIRE(pub_signal.controls.size() == 1);
    CHECK(pub_signal.controls[0].kind == ipc_kind::component_error);
}

TEST_CASE("backplane: a slow subscriber loses its oldest messages, the others get everything", "[backplane]") {
    fixture f;
    backplane bp("B"); // drop_oldest by default
    f.activate(bp);
    subscribe_to fast("B"), slow("B");
    collector fast_c, slow_c;
    chain(fast, fast_c);
    chain(slow, slow_c);
    slow.in("inbox").set_limit(3);
    for (component* c : std::vector<component*>{&fast, &slow, &fast_c, &slow_c}) f.activate(*c);
    f.settle();

    // Ten messages reach the backplane before any subscriber runs again.
    publish_to pub("B");
    feeder<int> src(iota(1, 10), false);
    chain(src, pub);
    f.activate(pub);
    f.activate(src);
    f.settle();

    CHECK(fast_c.values<int>() == iota(1, 10));
    CHECK(slow_c.values<int>() == iota(8, 10));
    CHECK(slow.dropped() == 7);
    CHECK(fast.dropped() == 0);
    CHECK(bp.dropped() == 7);
    CHECK(bp.subscribers() == 2);
    CHECK_FALSE(slow.finished());

    // It keeps receiving afterwards.
    feeder<int> more({11}, false);
    component::link({more, "outbox"}, {pub, "inbox"});
    f.activate(more);
    f.settle();
    CHECK(slow_c.values<int>() == std::vector<int>{8, 9, 10, 11});
}

TEST_CASE("backplane: a stalled subscriber keeps only the newest while the publisher never waits", "[backplane]") {
    fixture f;
    backplane bp("B");
    f.activate(bp);
    subscribe_to fast("B"), stalled("B");
    collector fast_c;
    gate stalled_c;
    chain(fast, fast_c);
    chain(stalled, stalled_c);
    stalled.in("inbox").set_limit(2);
    stalled_c.in("inbox").set_limit(1);
    for (component* c : std::vector<component*>{&fast, &stalled, &fast_c, &stalled_c}) f.activate(*c);
    f.settle();

    publish_to pub("B");
    collector pub_signal;
    feeder<int> src(iota(1, 100));
    chain(src, pub);
    component::link({pub, "signal"}, {pub_signal, "control"});
    f.activate(pub);
    f.activate(pub_signal);
    f.activate(src);
    f.settle();
    // The publisher got everything out and ended although one consumer stalled.
    CHECK(src.finished());
    CHECK(pub.finished());
    CHECK(fast_c.values<int>() == iota(1, 100));

    stalled_c.release();
    f.settle();
    std::vector<int> got = stalled_c.values<int>();
    // In order, ending with the newest, with the oldest lost in between.
    REQUIRE(got.size() >= 2);
    CHECK(std::is_sorted(got.begin(), got.end()));
    CHECK(got.back() == 100);
    CHECK(got[got.size() - 2] == 99);
    CHECK(got.size() < 100);
    CHECK(stalled.dropped() == 100 - got.size());
}

TEST_CASE("backplane: with policy fail a slow subscriber is cut off and told", "[backplane]") {
    bool per_subscriber = GENERATE(false, true);
    fixture f;
    std::unique_ptr<backplane> bp =
        per_subscriber ? std::make_unique<backplane>("B") : std::make_unique<backplane>("B", delivery_policy::fail);
    f.activate(*bp);
    subscribe_to fast("B");
    std::unique_ptr<subscribe_to> slow = per_subscriber ? std::make_unique<subscribe_to>("B", delivery_policy::fail)
                                                        : std::make_unique<subscribe_to>("B");
    collector fast_c, slow_c;
    chain(fast, fast_c);
    chain(*slow, slow_c);
    slow->in("inbox").set_limit(3);
    for (component* c : std::vector<component*>{&fast, slow.get(), &fast_c, &slow_c}) f.activate(*c);
    f.settle();

    publish_to pub("B");
    feeder<int> src(iota(1, 10), false);
    chain(src, pub);
    f.activate(pub);
    f.activate(src);
    f.settle();

    CHECK(fast_c.values<int>() == iota(1, 10));
    CHECK(slow->was_cut());
    CHECK(slow->finished());
    CHECK_FALSE(slow->subscribed());
    // What it passed on before the cut is in order; what it held is freed;
    // then a stop (a graceful end could not pass a consumer that does not read).
    std::vector<int> got = slow_c.values<int>();
    CHECK(got.size() <= 3);
    CHECK(std::equal(got.begin(), got.end(), iota(1, 3).begin()));
    CHECK(slow->queued_bytes() == 0);
    REQUIRE(slow_c.controls.size() == 1);
    CHECK(slow_c.controls[0].kind == ipc_kind::shutdown_microprocess);
    CHECK_THAT(slow_c.controls[0].text, Catch::Contains("cut off"));
    CHECK(bp->cut_off() == 1);
    CHECK(bp->subscribers() == 1);
    CHECK_FALSE(bp->finished());
}

TEST_CASE("backplane: fan-out shares one payload, never copies it", "[backplane]") {
    fixture f;
    backplane bp("B");
    f.activate(bp);
    std::vector<std::unique_ptr<subscribe_to>> subs;
    std::vector<std::unique_ptr<shared_collector>> sinks;
    for (int i = 0; i < 3; ++i) {
        subs.push_back(std::make_unique<subscribe_to>("B"));
        sinks.push_back(std::make_unique<shared_collector>());
        component::link({*subs.back(), "outbox"}, {*sinks.back(), "inbox"});
        f.activate(*subs.back());
        f.activate(*sinks.back());
    }
    f.settle();
    publish_to pub("B");
    feeder<std::string> src({std::string(100, 'x'), std::string(200, 'y')}, false);
    chain(src, pub);
    f.activate(pub);
    f.activate(src);
    f.settle();

    for (auto& s : sinks) REQUIRE(s->got.size() == 2);
    for (std::size_t k = 0; k < 2; ++k) {
        const std::string* first = sinks[0]->got[k].get();
        for (auto& s : sinks) CHECK(s->got[k].get() == first);
        CHECK(sinks[0]->got[k].use_count() == 3);
    }
    CHECK(*sinks[2]->got[1] == std::string(200, 'y'));
}

TEST_CASE("backplane: a subscriber destroyed or stopped mid-stream leaves cleanly", "[backplane]") {
    fixture f;
    backplane bp("B");
    f.activate(bp);
    subscribe_to keep("B");
    collector keep_c;
    chain(keep, keep_c);
    auto gone = std::make_unique<subscribe_to>("B");
    auto gone_c = std::make_unique<collector>();
    chain(*gone, *gone_c);
    auto stopped = std::make_unique<subscribe_to>("B");
    for (component* c : std::vector<component*>{&keep, &keep_c, gone.get(), gone_c.get(), stopped.get()})
        f.activate(*c);
    f.settle();
    REQUIRE(bp.subscribers() == 3);

    publish_to pub("B");
    feeder<int> src({1, 2}, false);
    chain(src, pub);
    f.activate(pub);
    f.activate(src);
    f.settle();

    // Destroyed with messages still queued for it; stopped without running its end.
    feeder<int> more({3}, false);
    component::link({more, "outbox"}, {pub, "inbox"});
    f.activate(more);
    gone.reset();
    stopped->stop();
    f.settle();
    CHECK(bp.subscribers() == 1);
    stopped.reset();

    feeder<int> last({4}, false);
    component::link({last, "outbox"}, {pub, "inbox"});
    f.activate(last);
    f.settle();
    CHECK(keep_c.values<int>() == std::vector<int>{1, 2, 3, 4});
    CHECK(gone_c->values<int>() == std::vector<int>{1, 2});
}

TEST_CASE("backplane: destroying a running backplane ends its subscribers", "[backplane]") {
    fixture f;
    auto bp = std::make_unique<backplane>("B");
    f.activate(*bp);
    subscribe_to sub("B");
    collector c;
    chain(sub, c);
    f.activate(sub);
    f.activate(c);
    publish_to pub("B");
    feeder<int> src({1}, false);
    chain(src, pub);
    f.activate(pub);
    f.activate(src);
    f.settle();
    REQUIRE(c.values<int>() == std::vector<int>{1});

    bp.reset();
    f.settle();
    CHECK_FALSE(sub.subscribed());
    CHECK(sub.finished());
    REQUIRE(c.controls.size() == 1);
    CHECK(c.controls[0].kind == ipc_kind::shutdown_microprocess);
    CHECK_FALSE(f.sched.services().has(backplane::service_name("B")));

    // The publisher's link went with the backplane: what it gets now is discarded.
    feeder<int> more({2, 3}, false);
    component::link({more, "outbox"}, {pub, "inbox"});
    f.activate(more);
    f.settle();
    CHECK(pub.discarded() == 2);
}

TEST_CASE("backplane: publish_to as a forwarder also passes its input on", "[backplane]") {
    fixture f;
    backplane bp("B");
    f.activate(bp);
    subscribe_to sub("B");
    collector sub_c, fwd_c;
    chain(sub, sub_c);
    f.activate(sub);
    f.activate(sub_c);
    f.settle();

    publish_to pub("B", true);
    feeder<std::string> src({"a", "b", "c"});
    chain(src, pub);
    chain(pub, fwd_c);
    f.activate(pub);
    f.activate(fwd_c);
    f.activate(src);
    f.settle();
    CHECK(fwd_c.values<std::string>() == std::vector<std::string>{"a", "b", "c"});
    CHECK(sub_c.values<std::string>() == std::vector<std::string>{"a", "b", "c"});
    REQUIRE(fwd_c.controls.size() == 1);
    CHECK(fwd_c.controls[0].kind == ipc_kind::producer_finished);
    CHECK_FALSE(sub.finished());
}

TEST_CASE("backplane: the chat shape, publish_to then subscribe_to in each client's chain", "[backplane]") {
    fixture f;
    backplane chat("CHAT");
    f.activate(chat);
    // client k: feeder → publish_to → subscribe_to → collector
    struct client {
        feeder<std::string> in;
        publish_to pub{"CHAT"};
        subscribe_to sub{"CHAT"};
        collector out;
        explicit client(std::vector<std::string> lines) : in(std::move(lines), false) {}
    };
    client alice({"alice: hi"}), bob({"bob: hello", "bob: bye"});
    for (client* c : {&alice, &bob}) {
        chain(c->pub, c->sub);
        chain(c->sub, c->out);
        f.activate(c->out);
        f.activate(c->sub);
        f.activate(c->pub);
    }
    f.settle();
    for (client* c : {&alice, &bob}) {
        chain(c->in, c->pub);
        f.activate(c->in);
    }
    f.settle();
    std::vector<std::string> all{"alice: hi", "bob: hello", "bob: bye"};
    CHECK(alice.out.values<std::string>() == all);
    CHECK(bob.out.values<std::string>() == all);

    // Bob disconnects: the end travels publish_to.signal → subscribe_to.control.
    deliver(bob.pub, "control", message(socket_shutdown("peer closed")));
    f.settle();
    CHECK(bob.pub.finished());
    CHECK(bob.sub.finished());
    REQUIRE(bob.out.controls.size() == 1);
    CHECK(bob.out.controls[0].kind == ipc_kind::socket_shutdown);
    CHECK(chat.subscribers() == 1);
    CHECK_FALSE(chat.finished());

    feeder<std::string> more({"alice: anyone?"}, false);
    component::link({more, "outbox"}, {alice.pub, "inbox"});
    f.activate(more);
    f.settle();
    CHECK(alice.out.values<std::string>().back() == "alice: anyone?");
    CHECK(bob.out.values<std::string>().size() == 3);
}

TEST_CASE("backplane: other control messages pass through a subscriber", "[backplane]") {
    fixture f;
    backplane bp("B");
    f.activate(bp);
    subscribe_to sub("B");
    collector c;
    c.stop_on_end = false;
    chain(sub, c);
    f.activate(sub);
    f.activate(c);
    f.settle();
    deliver(sub, "control", message(ipc{ipc_kind::notify, "hello", 0}));
    f.settle();
    CHECK_FALSE(sub.finished());
    REQUIRE(c.controls.size() == 1);
    CHECK(c.controls[0].text == "hello");
}

TEST_CASE("backplane: one publisher, a hundred subscribers", "[backplane][scale]") {
    fixture f;
    backplane bp("B");
    f.activate(bp);
    constexpr int n_subs = 100, n_msgs = 2000;
    std::vector<std::unique_ptr<subscribe_to>> subs;
    std::vector<std::unique_ptr<collector>> sinks;
    for (int i = 0; i < n_subs; ++i) {
        subs.push_back(std::make_unique<subscribe_to>("B"));
        sinks.push_back(std::make_unique<collector>());
        chain(*subs.back(), *sinks.back());
        f.activate(*subs.back());
        f.activate(*sinks.back());
    }
    f.settle();
    publish_to pub("B");
    feeder<int> src(iota(1, n_msgs));
    chain(src, pub);
    f.activate(pub);
    f.activate(src);
    f.settle();
    CHECK(bp.published() == n_msgs);
    CHECK(bp.delivered() == std::uint64_t(n_msgs) * n_subs);
    CHECK(bp.dropped() == 0);
    for (auto& s : sinks) REQUIRE(s->items.size() == std::size_t(n_msgs));
    CHECK(sinks[0]->values<int>() == iota(1, n_msgs));
    CHECK(sinks[n_subs - 1]->values<int>() == iota(1, n_msgs));
    // Each subscriber woke once per batch, not once per message.
    CHECK(subs[0]->wakeups() < std::uint32_t(n_msgs));
}

TEST_CASE("backplane: a subscriber skips what its skip function names, the others still get it", "[backplane]") {
    fixture f;
    backplane bp("ODDS");
    f.activate(bp);
    subscribe_to evens_only("ODDS", [](const message& m) {
        const int* v = m.peek<int>();
        return v && *v % 2 == 1;
    });
    collector evens_c;
    chain(evens_only, evens_c);
    subscribe_to all("ODDS");
    collector all_c;
    chain(all, all_c);
    for (component* c : {static_cast<component*>(&evens_only), static_cast<component*>(&evens_c),
                         static_cast<component*>(&all), static_cast<component*>(&all_c)})
        f.activate(*c);
    f.settle();
    publish_to pub("ODDS");
    feeder<int> src(iota(1, 6), false);
    chain(src, pub);
    f.activate(pub);
    f.activate(src);
    f.settle();
    CHECK(evens_c.values<int>() == std::vector<int>{2, 4, 6});
    CHECK(all_c.values<int>() == iota(1, 6));
    CHECK(bp.delivered() == 9);
    CHECK(bp.dropped() == 0);
}

// ---- byte bounds (issue 14, defect 2) ------------------------------------------

namespace {
std::vector<std::string> lines_of(std::size_t n, std::size_t bytes) {
    std::vector<std::string> v;
    for (std::size_t i = 0; i < n; ++i) {
        std::string s = std::to_string(i) + ":";
        s.resize(bytes, 'x');
        v.push_back(std::move(s));
    }
    return v;
}
} // namespace

TEST_CASE("backplane: a subscriber's queue is bounded in bytes, not only in messages", "[backplane][hostile]") {
    fixture f;
    backplane bp("B"); // drop_oldest
    f.activate(bp);
    subscribe_to stalled("B");
    gate stalled_c;
    chain(stalled, stalled_c);
    stalled.set_max_bytes(10'000);
    stalled_c.in("inbox").set_limit(1);
    f.activate(stalled);
    f.activate(stalled_c);
    f.settle();

    // 200 lines of 8,000 bytes: far fewer than the 256-message inbox bound,
    // far more than the 10,000-byte bound.
    publish_to pub("B");
    feeder<std::string> src(lines_of(200, 8000), false);
    chain(src, pub);
    f.activate(pub);
    f.activate(src);
    f.settle();
    // Never more than the bound (plus the one message in flight to the consumer).
    CHECK(stalled.queued_bytes() <= 10'000);
    CHECK(stalled.in("inbox").size() <= 2);
    CHECK(bp.queued_bytes() == stalled.queued_bytes());
    CHECK(stalled.dropped() >= 195);
    CHECK_FALSE(stalled.finished());

    stalled_c.release();
    f.settle();
    // What survives is the newest, in order.
    REQUIRE_FALSE(stalled_c.items.empty());
    CHECK(stalled_c.items.back().peek<std::string>()->rfind("199:", 0) == 0);
    CHECK(stalled.queued_bytes() == 0);
}

TEST_CASE("backplane: a single message bigger than the byte bound still reaches an empty queue", "[backplane]") {
    fixture f;
    backplane bp("B");
    f.activate(bp);
    subscribe_to sub("B");
    sub.set_max_bytes(100);
    collector c;
    chain(sub, c);
    for (component* x : std::vector<component*>{&sub, &c}) f.activate(*x);
    f.settle();
    publish_to pub("B");
    feeder<std::string> src(lines_of(3, 1000), false);
    chain(src, pub);
    for (component* x : std::vector<component*>{&pub, &src}) f.activate(*x);
    f.settle();
    // The three went out in one turn: each 1,000-byte line in turn took the
    // queue (the older one dropped), and the newest arrived.
    std::vector<std::string> got = c.values<std::string>();
    REQUIRE_FALSE(got.empty());
    CHECK(got.back().rfind("2:", 0) == 0);
    CHECK(sub.dropped() + got.size() == 3);
    CHECK(sub.queued_bytes() == 0);
}

TEST_CASE(
    "backplane: with policy fail a subscriber over its byte bound is cut off even while parked on a full consumer",
    "[backplane][hostile]") {
    fixture f;
    backplane bp("B", delivery_policy::fail);
    f.activate(bp);
    subscribe_to fast("B"), stuck("B");
    collector fast_c;
    gate stuck_c; // never reads: the subscriber parks sending to it
    chain(fast, fast_c);
    chain(stuck, stuck_c);
    stuck.set_max_bytes(20'000);
    stuck_c.in("inbox").set_limit(1);
    for (component* c : std::vector<component*>{&fast, &stuck, &fast_c, &stuck_c}) f.activate(*c);
    f.settle();

    publish_to pub("B");
    feeder<std::string> src(lines_of(50, 8000), false);
    chain(src, pub);
    f.activate(pub);
    f.activate(src);
    f.settle();

    CHECK(fast_c.values<std::string>().size() == 50);
    CHECK(stuck.was_cut());
    CHECK(stuck.finished()); // although it was parked on a consumer that never read
    CHECK(stuck.queued_bytes() == 0);
    CHECK(bp.cut_off() == 1);
    CHECK(bp.subscribers() == 1);
    // The consumer heard the stop (the chat's socket closes on it).
    REQUIRE_FALSE(stuck_c.controls.empty());
    CHECK(stuck_c.controls.back().kind == ipc_kind::shutdown_microprocess);
    CHECK_THAT(stuck_c.controls.back().text, Catch::Contains("cut off"));
}

TEST_CASE("subscribe_to: map, farewell and the consumer's bound, for a subscriber that feeds a socket",
          "[backplane][chat]") {
    fixture f;
    backplane bp("M");
    f.activate(bp);
    subscribe_to sub("M");
    // Odd numbers become their negation: applied in the subscriber's turn.
    sub.set_map([](message& m) {
        if (const int* v = m.peek<int>(); v && *v % 2 != 0) m = message(-*v);
    });
    sub.set_farewell([](const ipc& end) -> message {
        if (end.kind != ipc_kind::protocol_error) return {};
        return message(1000);
    });
    sub.set_consumer_limit(7);
    collector c;
    chain(sub, c);
    f.activate(sub);
    f.activate(c);
    f.settle();
    CHECK(c.in("inbox").limit() == 7); // set when it started

    publish_to pub("M");
    feeder<int> src(iota(1, 4), false);
    chain(src, pub);
    f.activate(pub);
    f.activate(src);
    f.settle();
    CHECK(c.values<int>() == std::vector<int>{-1, 2, -3, 4});
    CHECK(sub.queued_bytes() == 0); // counted as the backplane counted them

    SECTION("an end with a protocol error: the farewell goes first, then the end") {
        deliver(sub, "control", message(protocol_error("error: too long")));
        f.settle();
        CHECK(c.values<int>() == std::vector<int>{-1, 2, -3, 4, 1000});
        REQUIRE(c.controls.size() == 1);
        CHECK(c.controls[0].kind == ipc_kind::protocol_error);
    }
    SECTION("another end: no farewell") {
        deliver(sub, "control", message(producer_finished()));
        f.settle();
        CHECK(c.values<int>() == std::vector<int>{-1, 2, -3, 4});
        REQUIRE(c.controls.size() == 1);
    }
    SECTION("a stop: no farewell") {
        deliver(sub, "control", message(shutdown_microprocess()));
        f.settle();
        CHECK(c.values<int>() == std::vector<int>{-1, 2, -3, 4});
        REQUIRE(c.controls.size() == 1);
        CHECK(c.controls[0].kind == ipc_kind::shutdown_microprocess);
    }
    CHECK(sub.finished());
    CHECK_FALSE(sub.subscribed());
}
