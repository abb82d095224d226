// fanout, two_way_splitter, router, tpipe (docs/ORIGINAL.md, Utilities: splitters).
#include <kamaelia/chassis/tpipe.hpp>
#include <kamaelia/util/fanout.hpp>
#include <kamaelia/util/pure_transformer.hpp>
#include <kamaelia/util/router.hpp>
#include <kamaelia/util/two_way_splitter.hpp>

#include "fixture.hpp"

#include <catch2/catch.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

using namespace kamaelia;
using kamaelia::test::collector;
using kamaelia::test::feeder;
using kamaelia::test::fixture;

namespace {

void link_data(component& a, box_name out, component& b) { component::link({a, out}, {b, "inbox"}); }
void link_signal(component& a, box_name sig, component& b) { component::link({a, sig}, {b, "control"}); }

using stalled_collector = kamaelia::test::gate;

std::vector<int> iota(int from, int to) {
    std::vector<int> v;
    for (int i = from; i <= to; ++i) v.push_back(i);
    return v;
}

} // namespace

// ---- fanout -----------------------------------------------------------------

TEST_CASE("fanout: every message to each named outbox, none to outbox or signal", "[fanout]") {
    fixture f;
    fanout fo({"a", "b", "c"});
    collector a, b, c, plain, sig;
    sig.stop_on_end = false;
    link_data(fo, "a", a);
    link_data(fo, "b", b);
    link_data(fo, "c", c);
    link_data(fo, "outbox", plain);
    link_signal(fo, "signal", sig);
    feeder<std::string> src({"x", "y"}, false);
    link_data(src, "outbox", fo);
    for (component* k : std::vector<component*>{&fo, &a, &b, &c, &plain, &sig, &src}) f.activate(*k);
    f.settle();

    std::vector<std::string> want{"x", "y"};
    CHECK(a.values<std::string>() == want);
    CHECK(b.values<std::string>() == want);
    CHECK(c.values<std::string>() == want);
    CHECK(plain.items.empty());
    CHECK(sig.items.empty());
    CHECK(sig.controls.empty());
    // One payload, shared.
    CHECK(a.items[0].peek<std::string>() == c.items[0].peek<std::string>());
    CHECK(fo.outbox_names() == std::vector<std::string>{"a", "b", "c"});
}

TEST_CASE("fanout: producer_finished drains first, shutdown ends at once", "[fanout]") {
    fixture f;
    SECTION("producer_finished") {
        fanout fo({"a"});
        collector a, sig;
        link_data(fo, "a", a);
        link_signal(fo, "signal", sig);
        feeder<int> src({1, 2, 3});
        link_data(src, "outbox", fo);
        link_signal(src, "signal", fo);
        for (component* k : std::vector<component*>{&fo, &a, &sig, &src}) f.activate(*k);
        f.settle();
        CHECK(fo.finished());
        CHECK(a.values<int>() == std::vector<int>{1, 2, 3});
        REQUIRE(sig.controls.size() == 1);
        CHECK(sig.controls[0].kind == ipc_kind::producer_finished);
    }
    SECTION("shutdown_microprocess") {
        fanout fo({"a"});
        collector a, sig;
        link_data(fo, "a", a);
        link_signal(fo, "signal", sig);
        for (component* k : std::vector<component*>{&fo, &a, &sig}) f.activate(*k);
        // Data and the shutdown arrive together: stop now, nothing more is sent.
        deliver(fo, "inbox", message(1));
        deliver(fo, "control", message(shutdown_microprocess()));
        f.settle();
        CHECK(fo.finished());
        CHECK(a.items.empty());
        REQUIRE(sig.controls.size() == 1);
        CHECK(sig.controls[0].kind == ipc_kind::shutdown_microprocess);
    }
}

TEST_CASE("fanout: waits for room and keeps the order", "[fanout]") {
    fixture f;
    fanout fo({"fast", "slow"});
    collector fast;
    stalled_collector slow;
    slow.in("inbox").set_limit(2);
    link_data(fo, "fast", fast);
    link_data(fo, "slow", slow);
    feeder<int> src(iota(1, 10));
    link_data(src, "outbox", fo);
    link_signal(src, "signal", fo);
    link_signal(fo, "signal", slow);
    for (component* k : std::vector<component*>{&fo, &fast, &slow, &src}) f.activate(*k);
    f.settle();
    // The slow one holds two; the third waits in the fanout, nothing beyond it went anywhere.
    CHECK(fast.values<int>() == std::vector<int>{1, 2, 3});
    CHECK_FALSE(fo.finished());
    slow.release();
    f.settle();
    CHECK(fast.values<int>() == iota(1, 10));
    CHECK(slow.values<int>() == iota(1, 10));
    CHECK(fo.finished());
    REQUIRE(slow.controls.size() == 1);
}

// ---- two_way_splitter ----------------------------------------------------------

TEST_CASE("two_way_splitter: inbox to both outboxes, control to both signals", "[two_way_splitter]") {
    fixture f;
    two_way_splitter tw;
    collector one, two;
    link_data(tw, "outbox", one);
    link_data(tw, "outbox2", two);
    link_signal(tw, "signal", one);
    link_signal(tw, "signal2", two);
    feeder<int> src({1, 2, 3}, false);
    link_data(src, "outbox", tw);
    for (component* k : std::vector<component*>{&tw, &one, &two, &src}) f.activate(*k);
    f.settle();
    CHECK(one.values<int>() == std::vector<int>{1, 2, 3});
    CHECK(two.values<int>() == std::vector<int>{1, 2, 3});
    // The two outputs share each payload.
    CHECK(one.items[1].peek<int>() == two.items[1].peek<int>());

    one.stop_on_end = two.stop_on_end = true;
    deliver(tw, "control", message(ipc{ipc_kind::notify, "note", 0}));
    deliver(tw, "control", message(producer_finished("done")));
    f.settle();
    CHECK(tw.finished());
    for (collector* c : {&one, &two}) {
        REQUIRE(c->controls.size() == 2);
        CHECK(c->controls[0].text == "note");
        CHECK(c->controls[1].kind == ipc_kind::producer_finished);
        CHECK(c->controls[1].text == "done");
    }
}

TEST_CASE("two_way_splitter: back-pressure from either side, order kept", "[two_way_splitter]") {
    fixture f;
    two_way_splitter tw;
    collector one;
    stalled_collector two;
    two.in("inbox").set_limit(2);
    link_data(tw, "outbox", one);
    link_data(tw, "outbox2", two);
    link_signal(tw, "signal", one);
    link_signal(tw, "signal2", two);
    feeder<int> src(iota(1, 20));
    link_data(src, "outbox", tw);
    link_signal(src, "signal", tw);
    for (component* k : std::vector<component*>{&tw, &one, &two, &src}) f.activate(*k);
    f.settle();
    CHECK(one.values<int>() == std::vector<int>{1, 2, 3});
    CHECK_FALSE(tw.finished());
    two.release();
    f.settle();
    CHECK(one.values<int>() == iota(1, 20));
    CHECK(two.values<int>() == iota(1, 20));
    CHECK(tw.finished());
    REQUIRE(one.controls.size() == 1);
    REQUIRE(two.controls.size() == 1);
    CHECK(two.controls[0].kind == ipc_kind::producer_finished);
}

TEST_CASE("two_way_splitter: shutdown ends it at once", "[two_way_splitter]") {
    fixture f;
    two_way_splitter tw;
    collector one, two;
    link_data(tw, "outbox", one);
    link_data(tw, "outbox2", two);
    link_signal(tw, "signal", one);
    link_signal(tw, "signal2", two);
    for (component* k : std::vector<component*>{&tw, &one, &two}) f.activate(*k);
    f.settle();
    deliver(tw, "inbox", message(7));
    deliver(tw, "control", message(shutdown_microprocess()));
    f.settle();
    CHECK(tw.finished());
    CHECK(one.items.empty());
    REQUIRE(two.controls.size() == 1);
    CHECK(two.controls[0].kind == ipc_kind::shutdown_microprocess);
}

// ---- router ---------------------------------------------------------------------

TEST_CASE("router: each message to every outbox whose rule matches", "[router]") {
    fixture f;
    router r({{[](int n) { return n % 2 == 0; }, "even"},
              {[](int n) { return n % 3 == 0; }, "three"},
              {of_type<std::string>(), "text"}});
    collector even, three, text, sig;
    link_data(r, "even", even);
    link_data(r, "three", three);
    link_data(r, "text", text);
    link_signal(r, "signal", sig);
    feeder<int> nums(iota(1, 7), false);
    link_data(nums, "outbox", r);
    for (component* k : std::vector<component*>{&r, &even, &three, &text, &sig, &nums}) f.activate(*k);
    f.settle();
    deliver(r, "inbox", message(std::string("hello")));
    deliver(r, "inbox", message(2.5)); // matches nothing
    f.settle();
    CHECK(even.values<int>() == std::vector<int>{2, 4, 6});
    CHECK(three.values<int>() == std::vector<int>{3, 6});
    CHECK(text.values<std::string>() == std::vector<std::string>{"hello"});
    CHECK(r.unrouted() == 4); // 1, 5, 7 and 2.5
    // 6 went to two outboxes: one shared payload.
    CHECK(even.items[2].peek<int>() == three.items[1].peek<int>());

    deliver(r, "control", message(producer_finished()));
    f.settle();
    CHECK(r.finished());
    REQUIRE(sig.controls.size() == 1);
    CHECK(sig.controls[0].kind == ipc_kind::producer_finished);
}

TEST_CASE("router: unmatched count, rules on the message, and the shutdown rule", "[router]") {
    fixture f;
    router r({{[](const message& m) { return m.holds<double>(); }, "outbox"}});
    collector out, sig;
    link_data(r, "outbox", out);
    link_signal(r, "signal", sig);
    for (component* k : std::vector<component*>{&r, &out, &sig}) f.activate(*k);
    deliver(r, "inbox", message(1.5));
    deliver(r, "inbox", message(1));
    f.settle();
    CHECK(out.values<double>() == std::vector<double>{1.5});
    CHECK(r.unrouted() == 1);
    deliver(r, "control", message(shutdown_microprocess()));
    f.settle();
    CHECK(r.finished());
    REQUIRE(sig.controls.size() == 1);
    CHECK(sig.controls[0].kind == ipc_kind::shutdown_microprocess);

    CHECK_THROWS_AS(router({{[](int) { return true; }, "signal"}}), bad_box);
    CHECK_THROWS_AS(router({{[](int) { return true; }, "inbox"}}), bad_box);
}

// ---- tpipe ------------------------------------------------------------------------

namespace {

auto times_ten() {
    return pure_transformer([](int n) { return n * 10; });
}

struct tpipe_rig {
    fixture f;
    tpipe t;
    collector out, sig;
    explicit tpipe_rig(tpipe tp) : t(std::move(tp)) {
        link_data(t, "outbox", out);
        link_signal(t, "signal", sig);
        f.activate(t);
        f.activate(out);
        f.activate(sig);
    }
    void feed(std::vector<int> v) {
        for (int x : v) deliver(t, "inbox", message(x));
        f.settle();
    }
};

} // namespace

TEST_CASE("tpipe: split mode sends everything on and matches into the child", "[tpipe]") {
    // The child is a pure_transformer whose output re-enters the stream (source).
    tpipe_rig rig(tpipe(times_ten(), [](int n) { return n % 2 == 0; }, {.source = true}));
    rig.feed({1, 2, 3, 4});
    std::vector<int> got = rig.out.values<int>();
    std::vector<int> main_stream, from_child;
    for (int v : got) (v >= 10 ? from_child : main_stream).push_back(v);
    CHECK(main_stream == std::vector<int>{1, 2, 3, 4});
    CHECK(from_child == std::vector<int>{20, 40});

    // The end goes to the child after the data; the tpipe ends with it,
    // and its end message comes after the child's last output.
    deliver(rig.t, "inbox", message(6));
    deliver(rig.t, "control", message(producer_finished()));
    rig.f.settle();
    CHECK(rig.t.finished());
    CHECK(rig.out.values<int>().back() == 60);
    REQUIRE(rig.sig.controls.size() == 1);
    CHECK(rig.sig.controls[0].kind == ipc_kind::producer_finished);
}

TEST_CASE("tpipe: without source the child's output is not in the stream", "[tpipe]") {
    tpipe_rig rig(tpipe(times_ten(), [](int n) { return n > 1; }));
    rig.feed({1, 2, 3});
    CHECK(rig.out.values<int>() == std::vector<int>{1, 2, 3});
    CHECK(rig.t.options().sink);
    CHECK_FALSE(rig.t.options().source);
}

TEST_CASE("tpipe: route mode sends matches to the child only", "[tpipe]") {
    tpipe_rig rig(tpipe(times_ten(), [](int n) { return n % 2 == 0; }, {.mode = tpipe_mode::route, .source = true}));
    rig.feed({1, 2, 3, 4});
    std::vector<int> got = rig.out.values<int>();
    std::vector<int> plain, routed;
    for (int v : got) (v >= 10 ? routed : plain).push_back(v);
    CHECK(plain == std::vector<int>{1, 3});
    CHECK(routed == std::vector<int>{20, 40});
}

TEST_CASE("tpipe: route mode without sink drops what matches", "[tpipe]") {
    tpipe_rig rig(tpipe(times_ten(), [](int n) { return n % 2 == 0; },
                        {.mode = tpipe_mode::route, .sink = false, .source = true}));
    rig.feed({1, 2, 3, 4});
    CHECK(rig.out.values<int>() == std::vector<int>{1, 3});
}

TEST_CASE("tpipe: control goes to the child and on, shutdown ends both", "[tpipe]") {
    tpipe_rig rig(tpipe(times_ten(), [](int) { return true; }));
    deliver(rig.t, "control", message(ipc{ipc_kind::notify, "hi", 0}));
    rig.f.settle();
    // The notice went out of signal once (the child's copy stays inside).
    REQUIRE(rig.sig.controls.size() == 1);
    CHECK(rig.sig.controls[0].text == "hi");
    CHECK_FALSE(rig.t.finished());

    deliver(rig.t, "inbox", message(5));
    deliver(rig.t, "control", message(shutdown_microprocess()));
    CHECK(rig.f.settle() < 20); // the dropped input does not keep it spinning
    CHECK(rig.t.finished());
    CHECK(rig.out.controls.empty()); // the end goes out of signal
    REQUIRE(rig.sig.controls.size() == 2);
    CHECK(rig.sig.controls[1].kind == ipc_kind::shutdown_microprocess);
}

namespace {
// Takes one message and ends on its own.
struct take_one : component {
    task main() override {
        co_await wait_for("inbox");
        auto m = recv_message("inbox");
        co_await send_message(std::move(*m), "outbox");
        co_await send(producer_finished("took one"), "signal");
    }
};
} // namespace

TEST_CASE("tpipe: ends when the child ends on its own, passing its end on", "[tpipe]") {
    tpipe_rig rig(tpipe(take_one(), [](int n) { return n == 2; }, {.source = true}));
    rig.feed({1, 2});
    CHECK(rig.t.finished());
    CHECK(rig.out.values<int>() == std::vector<int>{1, 2, 2});
    REQUIRE(rig.sig.controls.size() == 1);
    CHECK(rig.sig.controls[0].text == "took one");
}
