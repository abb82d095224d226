// The loop the README teaches is right everywhere: shutdown_requested() never
// stalls behind a control message it does not understand, in the README's
// own coroutine component and in a threaded_component (here; more cases in
// test_component.cpp).
#include "fixture.hpp"
#include "thread_support.hpp"

#include <kamaelia/core/threaded_component.hpp>

#include <catch2/catch.hpp>

#include <cctype>
#include <string>
#include <vector>

using namespace kamaelia;
using kamaelia::test::collector;
using kamaelia::test::fixture;
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

namespace {

std::string to_upper(std::string s) {
    for (char& ch : s) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    return s;
}

// The component of the README and the guide (docs/GUIDE.md, 1), word for word.
class upper : public kamaelia::component {
    kamaelia::task main() override {
        while (!shutdown_requested()) {
            while (auto line = recv<std::string>())
                co_await send(to_upper(*line)); // suspends only if the receiver is full
            co_await wait_any();                // sleeps until any inbox has data
        }
        forward_shutdown();
    }
};

} // namespace

TEST_CASE("the README's loop: a control message it does not understand neither stalls nor spins it",
          "[core][control]") {
    fixture f;
    auto& u = f.spawn<upper>();
    auto& c = f.spawn<collector>();
    component::link({u, "outbox"}, {c, "inbox"});
    component::link({u, "signal"}, {c, "control"});
    deliver(u, "inbox", message(std::string("one")));
    f.settle();
    // Control messages meant for someone else, then more data.
    deliver(u, "control", message(ipc{ipc_kind::notify, "not for upper", 0}));
    deliver(u, "control", message(std::string("not even an ipc")));
    std::size_t cycles = f.settle(1000);
    CHECK(cycles < 10); // asleep again: nothing left on "control" keeps wait_any() ready
    REQUIRE(u.state() == component_state::active);
    CHECK(u.in("control").empty());
    deliver(u, "inbox", message(std::string("two")));
    f.settle();
    CHECK(c.values<std::string>() == std::vector<std::string>{"ONE", "TWO"});
    // One more right before the end: the end is still seen, after the data.
    deliver(u, "inbox", message(std::string("three")));
    deliver(u, "control", message(ipc{ipc_kind::notify, "still not for upper", 0}));
    deliver(u, "control", message(producer_finished()));
    f.settle();
    REQUIRE(u.finished());
    CHECK(c.values<std::string>() == std::vector<std::string>{"ONE", "TWO", "THREE"});
    REQUIRE(c.controls.size() == 1); // only the end is passed on
    CHECK(c.controls[0].kind == ipc_kind::producer_finished);
}
