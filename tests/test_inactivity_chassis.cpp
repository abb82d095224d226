// inactivity_chassis on the manual clock: input keeps the child alive,
// silence shuts it down exactly at the timeout, output is passed out.
#include "fixture.hpp"

#include <kamaelia/chassis/inactivity_chassis.hpp>
#include <kamaelia/util/pure_transformer.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <string>

using namespace kamaelia;
using kamaelia::test::collector;
using kamaelia::test::fixture;
using namespace std::chrono_literals;

namespace {
std::unique_ptr<component> echo() {
    pure_transformer t([](std::string s) { return "re: " + s; });
    return std::make_unique<decltype(t)>(std::move(t));
}
} // namespace

TEST_CASE("inactivity_chassis: input resets the clock, silence ends the child", "[chassis][inactivity]") {
    fixture f;
    auto& w = f.spawn<inactivity_chassis>(10s, echo());
    auto& out = f.spawn<collector>();
    component::link({w, "outbox"}, {out, "inbox"});
    component::link({w, "signal"}, {out, "control"});
    f.settle();
    deliver(w, "inbox", message(std::string("one")));
    f.settle();
    REQUIRE(out.values<std::string>() == std::vector<std::string>{"re: one"});
    f.advance(9s);
    deliver(w, "inbox", message(std::string("two"))); // at t=9s: the timeout now ends at 19s
    f.settle();
    f.advance(9s); // t=18s
    REQUIRE(w.state() == component_state::active);
    REQUIRE_FALSE(w.timed_out());
    f.advance(1s); // t=19s
    REQUIRE(w.timed_out());
    REQUIRE(w.state() >= component_state::finished); // finished (and reaped)
    REQUIRE(out.values<std::string>() == std::vector<std::string>{"re: one", "re: two"});
    // The child's end went out of signal: a connection would now close.
    REQUIRE(out.controls.size() == 1);
    REQUIRE(out.controls[0].kind == ipc_kind::shutdown_microprocess);
    REQUIRE(out.controls[0].text == "inactivity timeout");
}

TEST_CASE("inactivity_chassis: an end on control goes to the child, no timeout", "[chassis][inactivity]") {
    fixture f;
    auto& w = f.spawn<inactivity_chassis>(10s, echo());
    auto& out = f.spawn<collector>();
    component::link({w, "outbox"}, {out, "inbox"});
    component::link({w, "signal"}, {out, "control"});
    f.settle();
    deliver(w, "inbox", message(std::string("last")));
    deliver(w, "control", message(producer_finished("peer closed")));
    f.settle();
    REQUIRE(w.state() >= component_state::finished); // finished (and reaped)
    REQUIRE_FALSE(w.timed_out());
    REQUIRE(out.values<std::string>() == std::vector<std::string>{"re: last"});
    REQUIRE(out.controls.at(0).kind == ipc_kind::producer_finished);
}
