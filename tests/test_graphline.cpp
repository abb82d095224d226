#include "chassis_support.hpp"

#include <kamaelia/chassis/graphline.hpp>
#include <kamaelia/chassis/pipeline.hpp>

#include <catch2/catch.hpp>

using namespace kamaelia;
using namespace kamaelia::test;

namespace {

auto plus(int n) {
    return [n](int x) { return x + n; };
}

} // namespace

TEST_CASE("graphline: links children by name, self passing through both ways", "[graphline]") {
    auto j = std::make_shared<journal>();
    fixture f;
    collector col;
    feeder<int> in({1, 2, 3});
    graphline g(
        {
            {{"self", "inbox"}, {"A", "inbox"}},
            {{"A", "outbox"}, {"B", "inbox"}},
            {{"B", "outbox"}, {"self", "outbox"}},
            {{"A", "signal"}, {"B", "control"}},
        },
        named("A", mapper(j, "A", plus(1))), named("B", mapper(j, "B", plus(100))));
    CHECK(g.linkages().size() == 4);
    REQUIRE(g.child("A"));
    CHECK(g.child("A")->parent() == &g);
    CHECK(g.child("nobody") == nullptr);
    component::link({in, "outbox"}, {g, "inbox"});
    component::link({in, "signal"}, {g, "control"});
    link_to(g, col);
    f.activate(in);
    f.activate(g);
    f.activate(col);
    settle(f);
    CHECK(col.values<int>() == std::vector<int>{102, 103, 104});
    // A got the feeder's producer_finished by fan-out; B only through A
    // (its control is a link destination, so fan-out skips it).
    CHECK(j->of("A").back() == "control producer_finished");
    CHECK(j->of("B") == std::vector<std::string>{"2", "3", "4", "control producer_finished"});
    // B's signal is not linked to self: the graphline says it has finished, once.
    CHECK(kinds(col) == std::vector<ipc_kind>{ipc_kind::producer_finished});
    CHECK(g.finished());
    CHECK(g.child("A") == nullptr); // ended children are destroyed
    CHECK(f.sched.live() == 0);
    CHECK(j->created == j->destroyed);
}

TEST_CASE("graphline: boxes named on self are created on this instance only", "[graphline]") {
    auto j = std::make_shared<journal>();
    fixture f;
    collector col;
    graphline g(
        {
            {{"self", "numbers"}, {"A", "inbox"}},
            {{"A", "outbox"}, {"", "results"}},
            {{"A", "signal"}, {"self", "signal"}},
        },
        named("A", mapper(j, "A", plus(1))));
    graphline other({}, named("X", mapper(j, "X", plus(1))));
    REQUIRE(g.has_box("numbers"));
    REQUIRE(g.has_box("results"));
    CHECK(g.find_box("numbers").is_inbox());
    CHECK(g.find_box("results").is_outbox());
    // descriptions are copied from the child box they connect to
    std::string numbers_desc, inbox_desc;
    for (auto& b : g.boxes())
        if (b.name == "numbers") numbers_desc = b.description;
    for (auto& b : g.child("A")->boxes())
        if (b.name == "inbox") inbox_desc = b.description;
    CHECK(numbers_desc == inbox_desc);
    CHECK_FALSE(other.has_box("numbers")); // the original added them to every later Graphline
    CHECK_FALSE(other.has_box("results"));

    component::link({g, "results"}, {col, "inbox"});
    component::link({g, "signal"}, {col, "control"});
    deliver(g, "numbers", message(41));
    deliver(g, "control", message(producer_finished()));
    f.activate(g);
    f.activate(col);
    settle(f);
    CHECK(col.values<int>() == std::vector<int>{42});
    CHECK(kinds(col) == std::vector<ipc_kind>{ipc_kind::producer_finished}); // A's own, passed through
    deliver(other, "control", message(shutdown_microprocess()));
    f.activate(other);
    settle(f);
    CHECK(f.sched.live() == 0);
}

TEST_CASE("graphline: control fans out to every child whose control is not linked", "[graphline]") {
    auto j = std::make_shared<journal>();
    fixture f;
    collector col;
    graphline g({{{"A", "signal"}, {"C", "control"}}}, named("A", source(j, "A", {})), named("B", source(j, "B", {})),
                named("C", source(j, "C", {})));
    f.activate(g);
    f.activate(col);
    link_to(g, col);
    settle(f);
    deliver(g, "control", message(ipc{ipc_kind::notify, "hello", 0}));
    settle(f);
    CHECK(j->has("A:control notify hello"));
    CHECK(j->has("B:control notify hello"));
    CHECK_FALSE(j->has("C:control notify hello")); // C's control is fed by A
    CHECK(col.controls.empty());
    deliver(g, "control", message(shutdown_microprocess("now")));
    settle(f);
    CHECK(j->has("A:control shutdown_microprocess now"));
    CHECK(j->has("B:control shutdown_microprocess now"));
    CHECK(j->of("C") == std::vector<std::string>{"control shutdown_microprocess", "end"}); // A's forward
    // all ended: the graphline sends the shutdown it remembered
    REQUIRE(col.controls.size() == 1);
    CHECK(col.controls[0].kind == ipc_kind::shutdown_microprocess);
    CHECK(col.controls[0].text == "now");
    CHECK(col.controls[0].from == g.id()); // re-sent by the graphline
    CHECK(f.sched.live() == 0);
}

TEST_CASE("graphline: a user link from self control means no fan-out", "[graphline]") {
    auto j = std::make_shared<journal>();
    fixture f;
    collector col;
    graphline g({{{"self", "control"}, {"A", "control"}}}, named("A", source(j, "A", {})),
                named("B", taker(j, "B", 1)));
    deliver(g, "control", message(ipc{ipc_kind::notify, "only A", 0}));
    deliver(g, "inbox", message(5)); // self inbox is not linked: nobody reads it
    f.activate(g);
    f.activate(col);
    link_to(g, col);
    settle(f);
    CHECK(j->has("A:control notify only A"));
    CHECK_FALSE(j->has("B:control notify only A"));
    deliver(g, "control", message(shutdown_microprocess()));
    settle(f);
    CHECK(j->has("A:end"));
    CHECK_FALSE(g.finished()); // B waits for a value nobody sends
    deliver(*g.child("B"), "inbox", message(9));
    settle(f);
    CHECK(g.finished());
    CHECK(j->of("B") == std::vector<std::string>{"start", "9", "done"});
    // no shutdown was remembered (the user routed control): producer_finished
    CHECK(kinds(col) == std::vector<ipc_kind>{ipc_kind::producer_finished});
    CHECK(f.sched.live() == 0);
}

TEST_CASE("graphline: a user link to self signal means the graphline sends nothing itself", "[graphline]") {
    auto j = std::make_shared<journal>();
    fixture f;
    collector col;
    col.stop_on_end = false;
    graphline g({{{"B", "signal"}, {"self", "signal"}}}, named("A", taker(j, "A", 0)), named("B", source(j, "B", {})));
    f.activate(g);
    f.activate(col);
    link_to(g, col);
    settle(f);
    CHECK(col.controls.empty()); // A ended; B runs
    deliver(g, "control", message(shutdown_microprocess()));
    settle(f);
    CHECK(g.finished());
    CHECK(kinds(col) == std::vector<ipc_kind>{ipc_kind::shutdown_microprocess}); // B's, and only B's
    col.stop_on_end = true;
    deliver(col, "control", message(producer_finished()));
    settle(f);
    CHECK(f.sched.live() == 0);
}

TEST_CASE("graphline: ends with producer_finished when its children end by themselves", "[graphline]") {
    auto j = std::make_shared<journal>();
    fixture f;
    collector col;
    graphline g({{{"A", "outbox"}, {"self", "outbox"}}}, named("A", feeder<int>({7, 8})), named("B", taker(j, "B", 0)));
    f.activate(g);
    f.activate(col);
    link_to(g, col);
    settle(f);
    CHECK(col.values<int>() == std::vector<int>{7, 8});
    CHECK(kinds(col) == std::vector<ipc_kind>{ipc_kind::producer_finished});
    CHECK(f.sched.live() == 0);
}

TEST_CASE("graphline: nests in pipelines and graphlines, and holds them", "[graphline]") {
    auto j = std::make_shared<journal>();
    fixture f;
    collector col;
    // outer graphline → inner graphline (fan-out reaches grandchildren) →
    // a pipeline child; the whole inside a pipeline.
    graphline inner(
        {
            {{"self", "inbox"}, {"P", "inbox"}},
            {{"P", "outbox"}, {"self", "outbox"}},
            {{"P", "signal"}, {"self", "signal"}},
            {{"self", "control"}, {"P", "control"}},
        },
        named("P", pipeline(mapper(j, "p1", plus(1)), mapper(j, "p2", plus(10)))));
    graphline outer(
        {
            {{"self", "inbox"}, {"I", "inbox"}},
            {{"I", "outbox"}, {"self", "outbox"}},
            {{"I", "signal"}, {"W", "control"}},
        },
        named("I", std::move(inner)), named("W", source(j, "W", {})));
    pipeline p(feeder<int>({1, 2}), std::move(outer), mapper(j, "last", plus(1000)));
    f.activate(p);
    f.activate(col);
    link_to(p, col);
    settle(f);
    CHECK(col.values<int>() == std::vector<int>{1012, 1013});
    // the feeder's finish went: outer (fan-out) → inner → P → p1 → p2 → inner
    // signal → W; outer's own producer_finished → last → out
    CHECK(j->has("p2:control producer_finished"));
    CHECK(j->has("W:end"));
    CHECK(kinds(col) == std::vector<ipc_kind>{ipc_kind::producer_finished});
    CHECK(p.finished());
    CHECK(f.sched.live() == 0);
    CHECK(j->created == j->destroyed);
}

TEST_CASE("graphline: a child that throws ends the graphline cleanly", "[graphline]") {
    auto j = std::make_shared<journal>();
    fixture f;
    collector col;
    graphline g(
        {
            {{"SRC", "outbox"}, {"BAD", "inbox"}},
            {{"BAD", "outbox"}, {"OUT", "inbox"}},
            {{"BAD", "signal"}, {"OUT", "control"}},
            {{"OUT", "outbox"}, {"self", "outbox"}},
        },
        named("SRC", source(j, "SRC", {1, 2, 3})), named("BAD", thrower(j, "BAD", 1)),
        named("OUT", mapper(j, "OUT", plus(0))), named("IDLE", source(j, "IDLE", {})));
    f.activate(g);
    f.activate(col);
    link_to(g, col);
    settle(f);
    CHECK(g.finished());
    CHECK_FALSE(g.failed());
    CHECK(col.values<int>() == std::vector<int>{1});
    // OUT heard through BAD's signal (and was not told twice); the others were told to stop
    CHECK(j->of("OUT") == std::vector<std::string>{"1", "control component_error boom from BAD"});
    CHECK(j->has("SRC:end"));
    CHECK(j->has("IDLE:end"));
    REQUIRE(col.controls.size() == 1);
    CHECK(col.controls[0].kind == ipc_kind::component_error);
    CHECK(col.controls[0].text.find("boom from BAD") != std::string::npos);
    CHECK(f.sched.live() == 0);
    CHECK(j->created == j->destroyed);
}

TEST_CASE("graphline: malformed linkages are refused", "[graphline]") {
    auto j = std::make_shared<journal>();
    CHECK_THROWS_AS(graphline({{{"A", "outbox"}, {"NOPE", "inbox"}}}, named("A", taker(j, "A", 0))), bad_component);
    CHECK_THROWS_AS(graphline({{{"self", "inbox"}, {"self", "outbox"}}}, named("A", taker(j, "A", 0))), bad_state);
    CHECK_THROWS_AS(graphline({{{"A", "outbox"}, {"B", "inbox"}}, {{"A", "outbox"}, {"self", "outbox"}}},
                              named("A", taker(j, "A", 0)), named("B", taker(j, "B", 0))),
                    box_already_linked);
    CHECK_THROWS_AS(graphline({}, named("A", taker(j, "A", 0)), named("A", taker(j, "A2", 0))), bad_component);
    CHECK_THROWS_AS(graphline({}, named("self", taker(j, "S", 0))), bad_component);
    CHECK(j->created == j->destroyed);
}

TEST_CASE("graphline: built step by step, a bad name found at start fails it cleanly", "[graphline]") {
    auto j = std::make_shared<journal>();
    fixture f;
    collector col;
    SECTION("well formed") {
        graphline g;
        g.add("A", feeder<int>({3})).add("B", mapper(j, "B", plus(1)));
        g.connect({"A", "outbox"}, {"B", "inbox"}).connect({"A", "signal"}, {"B", "control"});
        g.connect({"B", "outbox"}, {"self", "outbox"});
        f.activate(g);
        f.activate(col);
        link_to(g, col);
        settle(f);
        CHECK(col.values<int>() == std::vector<int>{4});
        CHECK(kinds(col) == std::vector<ipc_kind>{ipc_kind::producer_finished});
    }
    SECTION("unknown name") {
        graphline g;
        g.add("A", taker(j, "A", -1)).connect({"X", "outbox"}, {"A", "inbox"});
        f.activate(g);
        f.activate(col);
        link_to(g, col);
        settle(f);
        CHECK(g.failed());
        CHECK(g.error_text().find("\"X\"") != std::string::npos);
        CHECK(kinds(col) == std::vector<ipc_kind>{ipc_kind::component_error});
        CHECK_FALSE(j->has("A:start")); // nothing was started
    }
    CHECK(f.sched.live() == 0);
    CHECK(j->created == j->destroyed);
}

TEST_CASE("graphline: a link limit bounds the destination inbox", "[graphline]") {
    auto j = std::make_shared<journal>();
    fixture f;
    graphline g;
    auto b = std::make_unique<taker>(j, "B", -1);
    taker* braw = b.get();
    g.add("A", feeder<int>(iota_vec(1, 10), false)).add("B", std::move(b));
    g.connect({"A", "outbox"}, {"B", "inbox"}, delivery_policy::drop_newest, 3);
    f.activate(g);
    f.step();
    CHECK(braw->in("inbox").limit() == 3);
    deliver(g, "control", message(shutdown_microprocess()));
    settle(f);
    CHECK(f.sched.live() == 0);
}
