// The loop the README teaches is right everywhere: shutdown_requested() never
// stalls behind a control message it does not understand, in a coroutine
// component (test_component.cpp) and in a threaded_component (here).
#include "fixture.hpp"
#include "thread_support.hpp"

#include <kamaelia/core/threaded_component.hpp>

#include <catch2/catch.hpp>

#include <vector>

using namespace kamaelia;
using kamaelia::test::collector;
using kamaelia::test::run_within;

namespace {

struct threaded_loop : threaded_component {
    std::vector<int> got; // read by the test after the thread was joined
    ipc_kind end = ipc_kind::notify;
    using threaded_component::threaded_component;
    void thread_main() override {
        while (!shutdown_requested()) {
            while (auto v = recv<int>()) got.push_back(*v);
            wait();
        }
        end = shutdown_kind();
        forward_shutdown();
    }
};

} // namespace

TEST_CASE("threaded shutdown_requested: an unknown control message does not hide the end",
          "[threaded][threads][control]") {
    scheduler s;
    threaded_loop c(16);
    collector after;
    deliver(c, "inbox", message(1));
    deliver(c, "control", message(ipc{ipc_kind::notify, "not for this loop", 0}));
    deliver(c, "control", message(std::string("not even an ipc")));
    deliver(c, "control", message(producer_finished()));
    deliver(c, "inbox", message(2));
    component::link({c, "signal"}, {after, "control"});
    c.activate(s);
    after.activate(s);
    REQUIRE(run_within(s));
    REQUIRE(c.got == std::vector<int>{1, 2});
    REQUIRE(c.end == ipc_kind::producer_finished);
    REQUIRE(after.controls.size() == 1);
    REQUIRE(after.controls[0].kind == ipc_kind::producer_finished);
}

TEST_CASE("threaded shutdown_requested: a later shutdown_microprocess turns a finish into a stop",
          "[threaded][threads][control]") {
    scheduler s;
    threaded_loop c(16);
    collector after;
    deliver(c, "control", message(producer_finished()));
    deliver(c, "control", message(shutdown_microprocess()));
    component::link({c, "signal"}, {after, "control"});
    c.activate(s);
    after.activate(s);
    REQUIRE(run_within(s));
    REQUIRE(c.end == ipc_kind::shutdown_microprocess);
    REQUIRE(after.controls.size() == 1);
    REQUIRE(after.controls[0].kind == ipc_kind::shutdown_microprocess);
}
