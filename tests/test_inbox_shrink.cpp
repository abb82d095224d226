// inbox::shrink(): an empty box gives its storage back but one slot, keeps
// its count and bound, and grows again on the fast and the general path.
#include "fixture.hpp"

#include <kamaelia/core/component.hpp>
#include <kamaelia/core/deliver.hpp>
#include <kamaelia/core/slab.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace kamaelia;
using kamaelia::test::fixture;

namespace {

// Takes what comes, and shrinks its inbox before each wait (as a
// connection handler does).
template <class T>
struct shrinking_sink : component {
    std::vector<T> got;
    task main() override {
        for (;;) {
            while (auto v = recv<T>()) got.push_back(std::move(*v));
            if (shutdown_requested()) break;
            in("inbox").shrink();
            co_await wait_any();
        }
    }
};

// Sends 0..n-1 with co_await send (the fast path for int), then finishes.
struct counter_source : component {
    int n;
    explicit counter_source(int count) : n(count) {}
    task main() override {
        for (int i = 0; i < n; ++i) co_await send(i);
        send_forced(message(producer_finished()), "signal");
    }
};

// Only waits: its inbox is filled and shrunk by the test.
struct idle : component {
    task main() override { co_await wait_for("control"); }
};

} // namespace

TEST_CASE("inbox::shrink: an empty box keeps one slot, its count and its bound", "[box][fastpath]") {
    fixture f;
    auto& c = f.spawn<idle>();
    f.settle();
    inbox& b = c.in("inbox");
    b.set_limit(10);
    for (int i = 0; i < 3; ++i) deliver(c, "inbox", message(i));
    b.shrink(); // messages wait: nothing happens
    REQUIRE(b.size() == 3);
    CHECK(b.pop().take<int>() == 0);
    CHECK(b.pop().take<int>() == 1);
    CHECK(b.pop().take<int>() == 2);
    std::size_t before = detail::slab_bytes_in_use();
    b.shrink();
    std::size_t after = detail::slab_bytes_in_use();
    if (detail::slab_enabled()) CHECK(before - after >= 2 * sizeof(message));
    CHECK(b.empty());
    CHECK(b.delivered() == 3);
    CHECK(b.limit() == 10);
    b.shrink(); // already small: nothing to give back
    CHECK(detail::slab_bytes_in_use() == after);
    // One message fits; more grow it again, in order.
    for (int i = 3; i < 9; ++i) deliver(c, "inbox", message(i));
    CHECK(b.size() == 6);
    CHECK(b.delivered() == 9);
    for (int i = 3; i < 9; ++i) CHECK(b.pop().take<int>() == i);
    b.shrink();
    deliver(c, "inbox", message(std::string("general path")));
    CHECK(b.pop().take<std::string>() == "general path");
    deliver(c, "control", message(shutdown_microprocess()));
    f.settle();
}

TEST_CASE("inbox::shrink: a receiver that shrinks before every wait loses nothing on the fast path",
          "[box][fastpath]") {
    fixture f;
    auto& sink = f.spawn<shrinking_sink<int>>();
    auto& src = f.spawn<counter_source>(5000);
    component::link({src, "outbox"}, {sink, "inbox"});
    component::link({src, "signal"}, {sink, "control"});
    sink.in("inbox").set_limit(3); // full often: the sender parks, the box grows and shrinks
    f.settle();
    REQUIRE(sink.finished());
    REQUIRE(sink.got.size() == 5000);
    bool in_order = true;
    for (int i = 0; i < 5000; ++i) in_order = in_order && sink.got[i] == i;
    CHECK(in_order);
    CHECK(sink.in("inbox").delivered() == 5000);
    CHECK(sink.in("inbox").limit() == 3);
}
