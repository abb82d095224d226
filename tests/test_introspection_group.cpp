// The graph of a scheduler group (introspection::group_view): every
// scheduler's components, each marked with its scheduler, in the text
// protocol (STAT ... scheduler=K), back through text_reader, and in dot as
// a cluster per scheduler. Stepped from one thread (group_fixture).
#include "group_fixture.hpp"

#include <kamaelia/core/introspection.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace kamaelia;
namespace in = kamaelia::introspection;
using kamaelia::test::group_fixture;

namespace {

struct idle : component {
    task main() override { co_await wait_for("inbox"); }
};

const in::component_snapshot* find(const in::graph& g, std::uint32_t id) { return g.find(id); }

} // namespace

TEST_CASE("group view: every scheduler's components, each with its scheduler", "[introspection][group]") {
    group_fixture g(3);
    auto& a = g.spawn<idle>(0);
    auto& b = g.spawn<idle>(1);
    auto& c = g.spawn<idle>(2);
    g.settle();
    in::group_view view({&g[0], &g[1], &g[2]});

    // The first take() asks the others; they answer when they next run.
    in::graph first = view.take(g[0]);
    REQUIRE(find(first, a.id()));
    CHECK_FALSE(find(first, b.id()));
    CHECK(view.incomplete());
    g[1].run_once();
    g[2].run_once();
    in::graph whole = view.take(g[0]);
    CHECK_FALSE(view.incomplete());
    REQUIRE(find(whole, a.id()));
    REQUIRE(find(whole, b.id()));
    REQUIRE(find(whole, c.id()));
    CHECK(find(whole, a.id())->scheduler == 0);
    CHECK(find(whole, b.id())->scheduler == 1);
    CHECK(find(whole, c.id())->scheduler == 2);

    // A scheduler that does not run shows its last picture, never blocks the home one.
    auto& late = g.spawn<idle>(1);
    in::graph again = view.take(g[0]);
    CHECK(find(again, b.id()));
    CHECK_FALSE(find(again, late.id()));
    g[1].run_once();
    view.take(g[0]);
    g[1].run_once();
    in::graph fresh = view.take(g[0]);
    REQUIRE(find(fresh, late.id()));
    CHECK(find(fresh, late.id())->scheduler == 1);

    // The text protocol carries it; the reader rebuilds it; dot clusters by it.
    in::text_differ differ(true);
    std::string text = differ.update(fresh);
    CHECK(text.find("STAT \"" + std::to_string(b.id()) + "\" ") != std::string::npos);
    CHECK(text.find(" scheduler=2\n") != std::string::npos);
    in::text_reader reader;
    std::size_t start = 0;
    while (start < text.size()) {
        std::size_t nl = text.find('\n', start);
        reader.feed(std::string_view(text).substr(start, nl - start));
        start = nl + 1;
    }
    in::graph back = reader.current();
    REQUIRE(back.find(c.id()));
    CHECK(back.find(c.id())->scheduler == 2);
    std::string dot = in::to_dot(back);
    for (const char* s :
         {"subgraph cluster_s0 {", "subgraph cluster_s1 {", "subgraph cluster_s2 {", "label=\"scheduler 1\""})
        CHECK(dot.find(s) != std::string::npos);
    // A node sits inside its scheduler's cluster.
    auto s2 = dot.find("cluster_s2");
    CHECK(dot.find("c" + std::to_string(c.id()) + " [", s2) != std::string::npos);
    CHECK(dot.find("c" + std::to_string(a.id()) + " [") < s2);
    for (auto* x : {&a, &b, &c, &late}) x->stop();
    g.settle();
}

TEST_CASE("group view: one scheduler is the plain snapshot, dot without scheduler clusters", "[introspection][group]") {
    group_fixture g(1);
    auto& a = g.spawn<idle>(0);
    g.settle();
    in::group_view view({&g[0]});
    in::graph one = view.take(g[0]);
    CHECK_FALSE(view.incomplete());
    REQUIRE(one.find(a.id()));
    CHECK(one.find(a.id())->scheduler == 0);
    CHECK(in::to_dot(one).find("cluster_s") == std::string::npos);
    a.stop();
    g.settle();
}

TEST_CASE("group view: a link between two schedulers, each end described by its own scheduler, the link once",
          "[introspection][group]") {
    group_fixture g(2);
    auto& a = g.spawn<idle>(0);
    auto& b = g.spawn<idle>(1);
    component::link({a, "outbox"}, {b, "inbox"});
    g.settle();
    // Scheduler 0's own snapshot has the link but leaves b to scheduler 1.
    in::graph own = in::snapshot(g[0]);
    CHECK(own.find(a.id()));
    CHECK_FALSE(own.find(b.id()));
    REQUIRE(own.links.size() == 1);

    in::group_view view({&g[0], &g[1]});
    view.take(g[0]);
    g[1].run_once();
    in::graph whole = view.take(g[0]);
    std::size_t as_b = 0;
    for (const auto& c : whole.components) as_b += c.id == b.id();
    CHECK(as_b == 1);
    REQUIRE(whole.find(b.id()));
    CHECK(whole.find(b.id())->scheduler == 1);
    // The link's pump on scheduler 1 is plumbing, not drawn.
    for (const auto& c : whole.components) CHECK(c.name.find("xlink_pump") == std::string::npos);
    REQUIRE(whole.links.size() == 1);
    CHECK(whole.links[0].source == a.id());
    CHECK(whole.links[0].sink == b.id());
    CHECK(whole.links[0].sink_box == "inbox");
    a.stop();
    b.stop();
    g.settle();
}
