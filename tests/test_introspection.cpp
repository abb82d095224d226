// Introspection: graph snapshots, the Introspector text protocol, Graphviz
// (docs/ORIGINAL.md, Introspection).
#include "fixture.hpp"
#include "thread_support.hpp"

#include <kamaelia/core/handle.hpp>
#include <kamaelia/core/introspection.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <future>
#include <sstream>
#include <string>
#include <vector>

using namespace kamaelia;
using kamaelia::test::collector;
using kamaelia::test::fixture;
using namespace std::chrono_literals;
namespace in = kamaelia::introspection;

namespace {

// Sends n ints at once (its receiver may be asleep).
struct burst : component {
    int n;
    explicit burst(int count) : n(count) {}
    task main() override {
        for (int i = 0; i < n; ++i) co_await send(i);
        co_await wait_for("control");
    }
};

// Leaves its inboxes alone (so depths stay visible) until told on control.
struct idle : component {
    idle() { declare_inbox("extra", "a declared inbox"); }
    task main() override {
        while (!shutdown_requested()) co_await wait_for("control");
    }
};

// A parent passing its boxes through to one child (link kinds 1 and 2).
struct wrapper : component {
    task main() override {
        for (component* c : children()) c->activate(*sched());
        while (!children_done()) co_await wait(ev_inbox | ev_children);
    }
};

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> v;
    std::istringstream is(text);
    for (std::string l; std::getline(is, l);) v.push_back(l);
    return v;
}

bool has_line(const std::string& text, const std::string& line) {
    auto v = lines_of(text);
    return std::find(v.begin(), v.end(), line) != v.end();
}

} // namespace

TEST_CASE("snapshot: components, boxes with depths, links", "[introspection]") {
    fixture f;
    auto& src = f.spawn<burst>(3);
    auto& dst = f.spawn<idle>();
    component::link({src, "outbox"}, {dst, "inbox"}, delivery_policy::drop_oldest);
    f.step(); // src runs once: three messages wait in dst's inbox
    in::graph g = in::snapshot(f.sched);
    REQUIRE(g.components.size() == 2);
    const in::component_snapshot* s = g.find(src.id());
    const in::component_snapshot* d = g.find(dst.id());
    REQUIRE(s);
    REQUIRE(d);
    REQUIRE(s->name == src.name());
    REQUIRE(s->parent == 0);
    REQUIRE(s->state == component_state::active);
    REQUIRE(s->sent == 3);
    REQUIRE(s->wakeups >= 1);
    REQUIRE(s->boxes.size() == 4);
    REQUIRE(d->boxes.size() == 5); // the four defaults and "extra"
    const in::box_snapshot* ib = d->find_box("inbox");
    REQUIRE(ib);
    REQUIRE(ib->kind == in::box_kind::inbox);
    REQUIRE(ib->depth == 3);
    REQUIRE(ib->delivered == 3);
    REQUIRE(ib->limit == default_inbox_limit);
    REQUIRE(ib->parked == 0);
    REQUIRE(d->find_box("extra")->description == "a declared inbox");
    REQUIRE(s->find_box("outbox")->kind == in::box_kind::outbox);
    REQUIRE(g.links.size() == 1);
    const in::link_snapshot& l = g.links[0];
    REQUIRE(l.source == src.id());
    REQUIRE(l.source_box == "outbox");
    REQUIRE(l.sink == dst.id());
    REQUIRE(l.sink_box == "inbox");
    REQUIRE(l.passthrough == 0);
    REQUIRE(l.policy == delivery_policy::drop_oldest);
}

TEST_CASE("snapshot: parents, children and passthrough links", "[introspection]") {
    fixture f;
    auto& w = f.spawn<wrapper>();
    auto& kid = w.add_child(std::make_unique<idle>());
    component::link({w, "inbox"}, {kid, "inbox"});   // kind 1
    component::link({kid, "outbox"}, {w, "outbox"}); // kind 2
    f.settle();
    in::graph g = in::snapshot(f.sched);
    REQUIRE(g.components.size() == 2);
    REQUIRE(g.components[0].id == w.id()); // parents first
    REQUIRE(g.find(kid.id())->parent == w.id());
    REQUIRE(g.links.size() == 2);
    int kinds = 0;
    for (const auto& l : g.links) kinds |= 1 << l.passthrough;
    REQUIRE(kinds == ((1 << 1) | (1 << 2)));
}

TEST_CASE("text protocol: DEL ALL, then only what changed", "[introspection]") {
    fixture f;
    auto& a = f.spawn<idle>();
    auto& b = f.spawn<idle>();
    component::link({a, "outbox"}, {b, "inbox"});
    f.settle();
    in::text_differ diff;
    std::string first = diff.update(in::snapshot(f.sched));
    auto lines = lines_of(first);
    REQUIRE(lines.front() == "DEL ALL");
    std::string aid = std::to_string(a.id()), bid = std::to_string(b.id());
    REQUIRE(has_line(first, "ADD NODE \"" + aid + "\" \"" + a.name() + "\" randompos component"));
    REQUIRE(has_line(first, "ADD NODE \"(" + aid + ", 'i', 'inbox')\" \"inbox\" randompos inbox"));
    REQUIRE(has_line(first, "ADD NODE \"(" + aid + ", 'o', 'signal')\" \"signal\" randompos outbox"));
    REQUIRE(has_line(first, "ADD LINK \"" + aid + "\" \"(" + aid + ", 'o', 'outbox')\""));
    REQUIRE(has_line(first, "ADD LINK \"(" + aid + ", 'o', 'outbox')\" \"(" + bid + ", 'i', 'inbox')\""));
    // DEL ALL, 2 components, 10 boxes (a node line and an owner link each), 1 link
    REQUIRE(lines.size() == 1 + 2 + 2 * 10 + 1);
    // The box→box link comes last, after every node.
    REQUIRE(lines.back() == "ADD LINK \"(" + aid + ", 'o', 'outbox')\" \"(" + bid + ", 'i', 'inbox')\"");

    REQUIRE(diff.update(in::snapshot(f.sched)).empty()); // nothing changed

    // A new component: its node, its boxes and their owner links, nothing else.
    auto& c = f.spawn<burst>(0);
    component::link({c, "outbox"}, {a, "inbox"});
    f.settle();
    std::string added = diff.update(in::snapshot(f.sched));
    auto add_lines = lines_of(added);
    REQUIRE(add_lines.size() == 1 + 2 * 4 + 1);
    for (const auto& l : add_lines) REQUIRE(l.rfind("ADD ", 0) == 0);
    std::string cid = std::to_string(c.id());
    REQUIRE(add_lines.front() == "ADD NODE \"" + cid + "\" \"" + c.name() + "\" randompos component");
    REQUIRE(add_lines.back() == "ADD LINK \"(" + cid + ", 'o', 'outbox')\" \"(" + aid + ", 'i', 'inbox')\"");

    // It goes: DEL LINK first, then its nodes.
    c.stop();
    f.settle();
    std::string removed = diff.update(in::snapshot(f.sched));
    auto del_lines = lines_of(removed);
    REQUIRE(del_lines.size() == 1 + 1 + 4);
    REQUIRE(del_lines.front() == "DEL LINK \"(" + cid + ", 'o', 'outbox')\" \"(" + aid + ", 'i', 'inbox')\"");
    for (std::size_t i = 1; i < del_lines.size(); ++i) REQUIRE(del_lines[i].rfind("DEL NODE ", 0) == 0);
    REQUIRE(has_line(removed, "DEL NODE \"" + cid + "\""));
    REQUIRE(has_line(removed, "DEL NODE \"(" + cid + ", 'i', 'control')\""));

    diff.reset();
    REQUIRE(lines_of(diff.update(in::snapshot(f.sched))).front() == "DEL ALL");
}

TEST_CASE("text protocol ids follow the original", "[introspection]") {
    REQUIRE(in::component_node_id(12) == "12");
    REQUIRE(in::box_node_id(12, in::box_kind::inbox, "control") == "(12, 'i', 'control')");
    REQUIRE(in::box_node_id(3, in::box_kind::outbox, "signal") == "(3, 'o', 'signal')");
}

TEST_CASE("Graphviz dot: clusters for parents, record nodes, port edges", "[introspection]") {
    fixture f;
    auto& w = f.spawn<wrapper>();
    auto& kid = w.add_child(std::make_unique<idle>());
    auto& src = f.spawn<burst>(2);
    component::link({w, "inbox"}, {kid, "inbox"});
    component::link({src, "outbox"}, {w, "inbox"}, delivery_policy::drop_newest);
    f.step();
    std::string dot = in::to_dot(in::snapshot(f.sched));
    std::string wid = std::to_string(w.id()), kid_id = std::to_string(kid.id()), sid = std::to_string(src.id());
    REQUIRE(dot.rfind("digraph kamaelia {", 0) == 0);
    REQUIRE(dot.find("subgraph cluster_c" + wid + " {") != std::string::npos);
    REQUIRE(dot.find("c" + kid_id + " [label=") != std::string::npos);
    // outbox is o0, inbox is i0; the passthrough edge is dashed, the policy labelled.
    REQUIRE(dot.find("c" + sid + ":o0 -> c" + wid + ":i0 [label=\"drop_newest\"];") != std::string::npos);
    REQUIRE(dot.find("c" + wid + ":i0 -> c" + kid_id + ":i0 [style=dashed];") != std::string::npos);
    REQUIRE(dot.find("<i0> inbox 2/256") != std::string::npos); // depth shown where messages wait
    REQUIRE(dot.substr(dot.size() - 2) == "}\n");
}

TEST_CASE("introspector component streams the diffs and forwards its end", "[introspection]") {
    fixture f;
    auto& intro = f.spawn<in::introspector>(1s);
    auto& out = f.spawn<collector>();
    component::link({intro, "outbox"}, {out, "inbox"});
    component::link({intro, "signal"}, {out, "control"});
    f.settle();
    REQUIRE(out.items.size() == 1);
    auto first = out.values<std::string>().at(0);
    REQUIRE(first.rfind("DEL ALL\n", 0) == 0);
    f.advance(1s); // nothing changed: nothing sent
    REQUIRE(out.items.size() == 1);
    auto& extra = f.spawn<idle>();
    f.advance(1s);
    REQUIRE(out.items.size() == 2);
    REQUIRE(has_line(out.values<std::string>().at(1),
                     "ADD NODE \"" + std::to_string(extra.id()) + "\" \"" + extra.name() + "\" randompos component"));
    deliver(intro, "control", message(shutdown_microprocess()));
    f.settle();
    REQUIRE(out.controls.size() == 1);
    REQUIRE(out.controls[0].kind == ipc_kind::shutdown_microprocess);
}

TEST_CASE("request_snapshot from another thread", "[introspection][threads]") {
    background bg;
    bg.sched().post([&] { bg.sched().spawn<idle>(); });
    auto f = in::request_snapshot(bg.sched());
    REQUIRE(f.wait_for(kamaelia::test::liveness_deadline) == std::future_status::ready);
    in::graph g = f.get();
    REQUIRE(g.components.size() == 1);
    REQUIRE(g.components[0].name.rfind("idle_", 0) == 0);
}

TEST_CASE("text protocol with counters: STAT lines, FRAME, and a reader that rebuilds the graph", "[introspection]") {
    fixture f;
    auto& w = f.spawn<wrapper>();
    auto& kid = w.add_child(std::make_unique<idle>());
    auto& src = f.spawn<burst>(3);
    component::link({w, "inbox"}, {kid, "inbox"});
    component::link({src, "outbox"}, {w, "inbox"});
    f.settle();
    in::text_differ diff(true);
    in::text_reader reader;
    auto feed = [&](const std::string& text) {
        int frames = 0;
        for (const auto& l : lines_of(text)) frames += reader.feed(l) ? 1 : 0;
        return frames;
    };
    in::graph g = in::snapshot(f.sched);
    std::string first = diff.update(g);
    REQUIRE(lines_of(first).back() == "FRAME 1");
    std::string kid_inbox = "(" + std::to_string(kid.id()) + ", 'i', 'inbox')";
    REQUIRE(has_line(first, "STAT \"" + kid_inbox + "\" depth=3 limit=256 delivered=3 parked=0"));
    REQUIRE(feed(first) == 1);
    REQUIRE(reader.malformed() == 0);

    in::graph back = reader.current();
    REQUIRE(back.components.size() == g.components.size());
    for (const auto& c : g.components) {
        const auto* b = back.find(c.id);
        REQUIRE(b);
        CHECK(b->name == c.name);
        CHECK(b->parent == c.parent);
        CHECK(b->wakeups == c.wakeups);
        CHECK(b->state == c.state);
        CHECK(b->boxes.size() == c.boxes.size());
    }
    REQUIRE(back.components[0].id == w.id()); // parents first
    REQUIRE(back.find(kid.id())->find_box("inbox")->depth == 3);
    REQUIRE(back.links.size() == g.links.size());
    REQUIRE(in::to_dot(back).find("<i0> inbox 3/256") != std::string::npos);

    // Nothing changed: nothing sent, not even a FRAME.
    REQUIRE(diff.update(in::snapshot(f.sched)).empty());
    // Only figures changed: STAT lines for what changed, then the next FRAME.
    deliver(kid, "inbox", message(7));
    std::string stats = diff.update(in::snapshot(f.sched));
    auto sl = lines_of(stats);
    REQUIRE(sl.size() == 2);
    REQUIRE(sl[0] == "STAT \"" + kid_inbox + "\" depth=4 limit=256 delivered=4 parked=0");
    REQUIRE(sl[1] == "FRAME 2");
    REQUIRE(feed(stats) == 1);
    REQUIRE(reader.current().find(kid.id())->find_box("inbox")->depth == 4);

    // Garbage is counted, not fatal.
    reader.feed("ADD NODE");
    reader.feed("HELLO world");
    REQUIRE(reader.malformed() == 2);
    REQUIRE(reader.current().components.size() == g.components.size());
}
