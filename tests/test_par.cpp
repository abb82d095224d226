#include "chassis_support.hpp"

#include <kamaelia/chassis/par.hpp>
#include <kamaelia/chassis/pipeline.hpp>

#include <catch2/catch.hpp>

#include <algorithm>

using namespace kamaelia;
using namespace kamaelia::test;

namespace {

auto plus(int n) {
    return [n](int x) { return x + n; };
}

// Records the address of every string payload it receives (taken as
// shared, so nothing is copied), then ends on an end message.
struct address_book : counted {
    std::shared_ptr<std::vector<const std::string*>> seen;
    address_book(journal_ptr j, std::string tag, std::shared_ptr<std::vector<const std::string*>> s)
        : counted(std::move(j), std::move(tag)),
          seen(std::move(s)) {}
    task main() override {
        for (;;) {
            while (auto v = recv<shared<std::string>>()) {
                seen->push_back(v->get());
                note(**v);
            }
            if (control_says_end()) break;
            co_await wait_any();
        }
        forward_end();
    }
};

} // namespace

TEST_CASE("par: children run side by side, their outputs merged", "[par]") {
    auto j = std::make_shared<journal>();
    fixture f;
    collector col;
    par p(feeder<int>({1, 2}), feeder<int>({10, 20}), feeder<int>({100}));
    CHECK(p.size() == 3);
    f.activate(p);
    f.activate(col);
    link_to(p, col);
    settle(f);
    auto v = col.values<int>();
    std::sort(v.begin(), v.end());
    CHECK(v == std::vector<int>{1, 2, 10, 20, 100});
    // per child, order is kept
    auto got = col.values<int>();
    CHECK(std::find(got.begin(), got.end(), 1) < std::find(got.begin(), got.end(), 2));
    CHECK(std::find(got.begin(), got.end(), 10) < std::find(got.begin(), got.end(), 20));
    // three children said producer_finished; par says it once
    CHECK(kinds(col) == std::vector<ipc_kind>{ipc_kind::producer_finished});
    CHECK(col.controls[0].from == p.id());
    CHECK(p.finished());
    CHECK(f.sched.live() == 0);
}

TEST_CASE("par: a child ending early does not end what follows par", "[par]") {
    auto j = std::make_shared<journal>();
    fixture f;
    collector col;
    par p(feeder<int>({1}), source(j, "slow", {2}));
    f.activate(p);
    f.activate(col);
    link_to(p, col);
    settle(f);
    CHECK(col.values<int>().size() == 2);
    CHECK(col.controls.empty()); // the original let the feeder's producer_finished out here
    CHECK_FALSE(col.finished());
    deliver(p, "control", message(producer_finished()));
    settle(f);
    CHECK(j->has("slow:control producer_finished"));
    CHECK(kinds(col) == std::vector<ipc_kind>{ipc_kind::producer_finished});
    CHECK(f.sched.live() == 0);
}

TEST_CASE("par: control goes to every child, par ends with the stop it received", "[par]") {
    auto j = std::make_shared<journal>();
    fixture f;
    collector col;
    par p(source(j, "a", {}), source(j, "b", {}), pipeline(source(j, "c", {}), mapper(j, "d", plus(1))));
    f.activate(p);
    f.activate(col);
    link_to(p, col);
    settle(f);
    deliver(p, "control", message(ipc{ipc_kind::notify, "all", 0}));
    settle(f);
    CHECK(j->has("a:control notify all"));
    CHECK(j->has("b:control notify all"));
    CHECK(j->has("c:control notify all")); // through the nested pipeline
    deliver(p, "control", message(shutdown_microprocess("stop")));
    settle(f);
    CHECK(j->has("a:end"));
    CHECK(j->has("b:end"));
    CHECK(j->has("d:control shutdown_microprocess"));
    REQUIRE(col.controls.size() == 1);
    CHECK(col.controls[0].kind == ipc_kind::shutdown_microprocess);
    CHECK(col.controls[0].text == "stop");
    CHECK(f.sched.live() == 0);
    CHECK(j->created == j->destroyed);
}

TEST_CASE("par: data on its inbox reaches every child, in order, one shared payload", "[par]") {
    auto j = std::make_shared<journal>();
    fixture f;
    auto seen = std::make_shared<std::vector<const std::string*>>();
    feeder<std::string> in({"one", "two", "three"});
    par p(address_book(j, "x", seen), address_book(j, "y", seen));
    component::link({in, "outbox"}, {p, "inbox"});
    component::link({in, "signal"}, {p, "control"});
    f.activate(in);
    f.activate(p);
    settle(f);
    CHECK(j->of("x") == std::vector<std::string>{"one", "two", "three", "control producer_finished"});
    CHECK(j->of("y") == std::vector<std::string>{"one", "two", "three", "control producer_finished"});
    // both children saw the very same three strings: shared, not copied
    REQUIRE(seen->size() == 6);
    std::vector<const std::string*> x, y;
    for (std::size_t i = 0; i < seen->size(); ++i) (i % 2 ? y : x).push_back((*seen)[i]);
    std::sort(x.begin(), x.end());
    std::sort(y.begin(), y.end());
    CHECK(x == y);
    CHECK(p.finished());
    CHECK(f.sched.live() == 0);
}

TEST_CASE("par: a child taking values gets its own copy", "[par]") {
    auto j = std::make_shared<journal>();
    fixture f;
    collector col;
    feeder<int> in({1, 2, 3});
    par p(mapper(j, "a", plus(10)), mapper(j, "b", plus(20)));
    component::link({in, "outbox"}, {p, "inbox"});
    component::link({in, "signal"}, {p, "control"});
    f.activate(in);
    f.activate(p);
    f.activate(col);
    link_to(p, col);
    settle(f);
    auto v = col.values<int>();
    std::sort(v.begin(), v.end());
    CHECK(v == std::vector<int>{11, 12, 13, 21, 22, 23});
    CHECK(kinds(col) == std::vector<ipc_kind>{ipc_kind::producer_finished});
    CHECK(f.sched.live() == 0);
}

TEST_CASE("par: broadcasting waits for a full child, and is freed when a full child ends", "[par]") {
    // "one" reads a single value and lingers with its inbox full; par waits
    // on it. When it ends, par goes on, and "all" gets every value.
    struct one_then_linger : counted {
        using counted::counted;
        task main() override {
            co_await wait_for("inbox");
            note(std::to_string(*recv<int>()));
            co_await sleep_for(std::chrono::seconds(1));
            note("end");
        }
    };
    auto j = std::make_shared<journal>();
    fixture f;
    collector col;
    feeder<int> in(iota_vec(1, 1000));
    par p(one_then_linger(j, "one"), mapper(j, "all", plus(0)));
    component::link({in, "outbox"}, {p, "inbox"});
    component::link({in, "signal"}, {p, "control"});
    f.activate(in);
    f.activate(p);
    f.activate(col);
    link_to(p, col);
    settle(f);
    CHECK_FALSE(p.finished());
    CHECK(col.values<int>().size() < 1000); // held back by "one"
    advance_by(f, std::chrono::seconds(1));
    CHECK(p.finished());
    CHECK(col.values<int>() == iota_vec(1, 1000)); // all from "all", in order
    CHECK(j->of("one") == std::vector<std::string>{"1", "end"});
    CHECK(j->of("all").size() == 1001); // every value, then the finish
    CHECK(kinds(col) == std::vector<ipc_kind>{ipc_kind::producer_finished});
    CHECK(f.sched.live() == 0);
    CHECK(j->created == j->destroyed);
}

TEST_CASE("par: a child that throws stops its siblings, par ends with component_error", "[par]") {
    auto j = std::make_shared<journal>();
    fixture f;
    collector col;
    par p(thrower(j, "bad", 1), source(j, "ok", {}));
    deliver(p, "inbox", message(5));
    f.activate(p);
    f.activate(col);
    link_to(p, col);
    settle(f);
    CHECK(p.finished());
    CHECK_FALSE(p.failed());
    CHECK(j->has("ok:end"));
    CHECK(col.values<int>() == std::vector<int>{5});
    REQUIRE(col.controls.size() == 1);
    CHECK(col.controls[0].kind == ipc_kind::component_error);
    CHECK(col.controls[0].text.find("boom from bad") != std::string::npos);
    CHECK(f.sched.live() == 0);
    CHECK(j->created == j->destroyed);
}

TEST_CASE("par: nests inside a pipeline", "[par]") {
    auto j = std::make_shared<journal>();
    fixture f;
    collector col;
    pipeline p(feeder<int>({1, 2}), par(mapper(j, "a", plus(100)), par(mapper(j, "b", plus(200)))),
               mapper(j, "c", plus(1)));
    f.activate(p);
    f.activate(col);
    link_to(p, col);
    settle(f);
    auto v = col.values<int>();
    std::sort(v.begin(), v.end());
    CHECK(v == std::vector<int>{102, 103, 202, 203});
    CHECK(kinds(col) == std::vector<ipc_kind>{ipc_kind::producer_finished});
    CHECK(f.sched.live() == 0);
    CHECK(j->created == j->destroyed);
}

TEST_CASE("par: an empty par ends at once", "[par]") {
    fixture f;
    collector col;
    par p;
    f.activate(p);
    f.activate(col);
    link_to(p, col);
    settle(f);
    CHECK(kinds(col) == std::vector<ipc_kind>{ipc_kind::producer_finished});
    CHECK(f.sched.live() == 0);
}
