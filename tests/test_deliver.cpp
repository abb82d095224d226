// kamaelia::deliver: the one public way into a component from outside any
// component, with each delivery policy on a full inbox and on one with room.
#include "fixture.hpp"

#include <kamaelia/chassis/pipeline.hpp>
#include <kamaelia/core/deliver.hpp>

#include <catch2/catch.hpp>

#include <memory>
#include <vector>

using namespace kamaelia;
using kamaelia::test::collector;
using kamaelia::test::fixture;
using kamaelia::test::gate;

namespace {

// A stalled receiver whose inbox (limit 2) already holds 1 and 2.
struct full_gate {
    fixture f;
    gate& g = f.spawn<gate>();
    full_gate() {
        g.in("inbox").set_limit(2);
        f.settle();
        REQUIRE(deliver(g, "inbox", message(1)));
        REQUIRE(deliver(g, "inbox", message(2)));
        f.settle();
        REQUIRE(g.in("inbox").full());
    }
    std::vector<int> drained() {
        g.release();
        deliver(g, "control", message(producer_finished()));
        f.settle();
        REQUIRE(g.finished());
        return g.values<int>();
    }
};

} // namespace

TEST_CASE("deliver wakes a waiting receiver and keeps the order", "[deliver]") {
    fixture f;
    auto& c = f.spawn<collector>();
    f.settle();
    REQUIRE(c.items.empty());
    for (auto p :
         {delivery_policy::suspend, delivery_policy::drop_newest, delivery_policy::drop_oldest, delivery_policy::fail})
        REQUIRE(deliver(c, "inbox", message(static_cast<int>(p)), p)); // room: every policy delivers
    f.settle();
    REQUIRE(c.values<int>() == std::vector<int>{0, 1, 2, 3});
    REQUIRE(deliver(c, "control", message(producer_finished())));
    f.settle();
    REQUIRE(c.finished());
}

TEST_CASE("deliver to a full inbox, default (suspend): past the bound, nothing lost", "[deliver]") {
    full_gate t;
    REQUIRE(deliver(t.g, "inbox", message(3)));
    REQUIRE(deliver(t.g, "inbox", message(4), delivery_policy::suspend));
    REQUIRE(t.g.in("inbox").size() == 4); // over its limit of 2
    REQUIRE(t.drained() == std::vector<int>{1, 2, 3, 4});
}

TEST_CASE("deliver to a full inbox, drop_newest: the new message is discarded", "[deliver]") {
    full_gate t;
    REQUIRE_FALSE(deliver(t.g, "inbox", message(3), delivery_policy::drop_newest));
    REQUIRE(t.g.in("inbox").size() == 2);
    REQUIRE(t.drained() == std::vector<int>{1, 2});
}

TEST_CASE("deliver to a full inbox, drop_oldest: the oldest makes room", "[deliver]") {
    full_gate t;
    REQUIRE(deliver(t.g, "inbox", message(3), delivery_policy::drop_oldest));
    REQUIRE(deliver(t.g, "inbox", message(4), delivery_policy::drop_oldest));
    REQUIRE(t.g.in("inbox").size() == 2);
    REQUIRE(t.drained() == std::vector<int>{3, 4});
}

TEST_CASE("deliver to a full inbox, fail: refused, the receiver untouched", "[deliver]") {
    full_gate t;
    REQUIRE_FALSE(deliver(t.g, "inbox", message(3), delivery_policy::fail));
    REQUIRE(t.g.in("inbox").size() == 2);
    REQUIRE(t.g.in("control").empty()); // no link was cut: nothing to tell it
    REQUIRE(t.drained() == std::vector<int>{1, 2});
    REQUIRE(t.g.controls.size() == 1); // only the producer_finished the test sent
}

TEST_CASE("deliver follows passthrough links: a pipeline's inbox reaches its first stage", "[deliver]") {
    fixture f;
    auto first = std::make_unique<collector>();
    collector* c = first.get();
    auto& p = f.spawn<pipeline>(std::move(first));
    f.settle();
    REQUIRE(deliver(p, "inbox", message(7)));
    REQUIRE(p.in("inbox").empty()); // nothing kept in the pipeline's own storage
    f.settle();
    REQUIRE(c->values<int>() == std::vector<int>{7});
    REQUIRE(deliver(p, "control", message(producer_finished())));
    f.settle();
    REQUIRE(p.finished());
}

TEST_CASE("deliver to a box the component does not have throws", "[deliver]") {
    fixture f;
    auto& c = f.spawn<collector>();
    REQUIRE_THROWS(deliver(c, "no_such_box", message(1)));
    deliver(c, "control", message(producer_finished()));
    f.settle();
}
