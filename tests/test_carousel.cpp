#include "chassis_support.hpp"

#include <kamaelia/chassis/carousel.hpp>
#include <kamaelia/chassis/graphline.hpp>

#include <catch2/catch.hpp>

using namespace kamaelia;
using namespace kamaelia::test;

namespace {

// What a carousel child is built from.
struct order {
    enum what_t { play, wait, echo, fail, slow } what;
    std::string tag;
    int count = 0;
};

// Sends "tag 1" ... "tag n", then ends of its own accord; stops early if told.
struct player : counted {
    int n;
    player(journal_ptr j, std::string tag, int count) : counted(std::move(j), std::move(tag)), n(count) {}
    task main() override {
        note("start");
        for (int i = 1; i <= n; ++i) {
            if (control_says_end()) {
                note("told");
                co_return;
            }
            std::string line = tag + " " + std::to_string(i);
            co_await send(std::move(line));
        }
        note("done");
    }
};

carousel::factory make_children(journal_ptr j) {
    return [j](message& m) -> std::unique_ptr<component> {
        order o = m.take<order>();
        switch (o.what) {
        case order::play: return std::make_unique<player>(j, o.tag, o.count);
        case order::wait: return std::make_unique<taker>(j, o.tag, -1);
        case order::echo: return std::make_unique<mapper>(j, o.tag, [](int x) { return x; });
        case order::fail: return std::make_unique<thrower>(j, o.tag, o.count);
        case order::slow: return std::make_unique<sleeper>(j, o.tag, std::chrono::seconds(1));
        }
        return nullptr;
    };
}

struct rig {
    journal_ptr j = std::make_shared<journal>();
    fixture f;
    collector col;  // outbox, signal
    collector reqs; // requestNext
    carousel c;
    explicit rig(bool first_request = false) : c(make_children(j), first_request) {
        link_to(c, col);
        component::link({c, "requestNext"}, {reqs, "inbox"});
        f.activate(c);
        f.activate(col);
        f.activate(reqs);
    }
    ~rig() {
        deliver(reqs, "control", message(producer_finished()));
        settle(f);
    }
    void next(order o) { deliver(c, "next", message(std::move(o))); }
    std::size_t requests() const { return reqs.values<std::string>().size(); }
};

} // namespace

TEST_CASE("carousel: builds a child from each next, asks NEXT when it ends by itself", "[carousel]") {
    rig r;
    CHECK(r.c.has_box("next"));
    CHECK(r.c.has_box("requestNext"));
    settle(r.f);
    CHECK(r.requests() == 0); // make_first_request is off
    r.next({order::play, "a", 2});
    settle(r.f);
    CHECK(r.col.values<std::string>() == std::vector<std::string>{"a 1", "a 2"});
    CHECK(r.reqs.values<std::string>() == std::vector<std::string>{"NEXT"});
    CHECK(r.c.current() == nullptr);
    r.next({order::play, "b", 1});
    settle(r.f);
    CHECK(r.col.values<std::string>() == std::vector<std::string>{"a 1", "a 2", "b 1"});
    CHECK(r.requests() == 2);
    CHECK(r.c.built() == 2);
    CHECK(r.col.controls.empty()); // the children's endings do not leave the carousel
    deliver(r.c, "control", message(producer_finished()));
    settle(r.f);
    CHECK(r.c.finished());
    CHECK(kinds(r.col) == std::vector<ipc_kind>{ipc_kind::producer_finished});
    CHECK(r.j->created == r.j->destroyed);
}

TEST_CASE("carousel: make_first_request asks at start", "[carousel]") {
    rig r(true);
    settle(r.f);
    CHECK(r.reqs.values<std::string>() == std::vector<std::string>{"NEXT"});
    deliver(r.c, "control", message(shutdown_microprocess()));
    settle(r.f);
    CHECK(r.c.finished());
    CHECK(kinds(r.col) == std::vector<ipc_kind>{ipc_kind::shutdown_microprocess});
    CHECK(r.requests() == 1);
}

TEST_CASE("carousel: next while a child runs stops it once, then builds the next", "[carousel]") {
    rig r;
    r.next({order::wait, "a"});
    settle(r.f);
    REQUIRE(r.c.current());
    r.next({order::wait, "b"});
    r.next({order::wait, "c"});
    settle(r.f);
    // a told once; b built after a ended, told at once (c was waiting); c runs
    CHECK(r.j->of("a") == std::vector<std::string>{"start", "control shutdown_microprocess next", "told"});
    CHECK(r.j->of("b") == std::vector<std::string>{"start", "control shutdown_microprocess next", "told"});
    CHECK(r.j->of("c") == std::vector<std::string>{"start"});
    CHECK(r.c.built() == 3);
    CHECK(r.requests() == 0); // nobody ended of its own accord
    deliver(r.c, "control", message(shutdown_microprocess()));
    settle(r.f);
    CHECK(r.j->of("c").back() == "told");
    CHECK(kinds(r.col) == std::vector<ipc_kind>{ipc_kind::shutdown_microprocess});
    CHECK(r.requests() == 0);
    CHECK(r.c.finished());
}

TEST_CASE("carousel: a next is consumed only after the old child has gone", "[carousel]") {
    rig r;
    r.next({order::slow, "slow"});
    settle(r.f);
    r.next({order::play, "x", 1});
    settle(r.f);
    // the slow child was told and takes its time: the next waits in its box
    CHECK(r.c.data_ready("next") == 1);
    CHECK(r.c.built() == 1);
    r.next({order::play, "y", 1});
    deliver(r.c, "control", message(shutdown_microprocess("quit")));
    settle(r.f);
    CHECK(r.c.data_ready("next") == 2);
    advance_by(r.f, std::chrono::seconds(1));
    // told once (the stop was not sent again), and the stop wins over the
    // nexts still waiting
    CHECK(r.j->of("slow") == std::vector<std::string>{"start", "control shutdown_microprocess next", "end"});
    CHECK(r.c.built() == 1);
    CHECK(r.c.finished());
    REQUIRE(r.col.controls.size() == 1);
    CHECK(r.col.controls[0].kind == ipc_kind::shutdown_microprocess);
    CHECK(r.col.controls[0].text == "quit");
    CHECK(r.requests() == 0);
}

TEST_CASE("carousel: other control messages reach the current child", "[carousel]") {
    rig r;
    r.next({order::wait, "a"});
    settle(r.f);
    deliver(r.c, "control", message(ipc{ipc_kind::notify, "psst", 0}));
    settle(r.f);
    CHECK(r.j->has("a:control notify psst"));
    deliver(r.c, "control", message(shutdown_microprocess()));
    settle(r.f);
    CHECK(r.c.finished());
}

TEST_CASE("carousel: input waits, in order, for the next child", "[carousel]") {
    rig r;
    deliver(r.c, "inbox", message(1));
    deliver(r.c, "inbox", message(2));
    settle(r.f);
    CHECK(r.col.items.empty());
    r.next({order::echo, "e"});
    settle(r.f);
    deliver(r.c, "inbox", message(3));
    settle(r.f);
    CHECK(r.col.values<int>() == std::vector<int>{1, 2, 3});
    deliver(r.c, "control", message(producer_finished()));
    settle(r.f);
    CHECK(r.c.finished());
    CHECK(kinds(r.col) == std::vector<ipc_kind>{ipc_kind::producer_finished});
}

TEST_CASE("carousel: a finish reaches the running child and every later one", "[carousel]") {
    rig r;
    r.next({order::echo, "first"});
    settle(r.f);
    deliver(r.c, "inbox", message(7));
    deliver(r.c, "control", message(producer_finished()));
    r.next({order::echo, "second"});
    settle(r.f);
    CHECK(r.j->of("first") == std::vector<std::string>{"7", "control producer_finished"});
    CHECK(r.j->of("second") == std::vector<std::string>{"control producer_finished"});
    CHECK(r.col.values<int>() == std::vector<int>{7});
    CHECK(r.c.built() == 2);
    CHECK(r.requests() == 0);
    CHECK(r.c.finished());
    CHECK(kinds(r.col) == std::vector<ipc_kind>{ipc_kind::producer_finished});
}

TEST_CASE("carousel: a child that throws ends the carousel with component_error", "[carousel]") {
    rig r;
    r.next({order::fail, "bad", 1});
    deliver(r.c, "inbox", message(4));
    settle(r.f);
    CHECK(r.c.finished());
    CHECK_FALSE(r.c.failed());
    CHECK(r.col.values<int>() == std::vector<int>{4});
    REQUIRE(r.col.controls.size() == 1);
    CHECK(r.col.controls[0].kind == ipc_kind::component_error);
    CHECK(r.col.controls[0].text.find("boom from bad") != std::string::npos);
    CHECK(r.requests() == 0);
}

TEST_CASE("carousel: a factory that throws fails the carousel", "[carousel]") {
    fixture f;
    collector col;
    carousel c([](message&) -> std::unique_ptr<component> { throw std::runtime_error("cannot build"); });
    link_to(c, col);
    deliver(c, "next", message(1));
    f.activate(c);
    f.activate(col);
    settle(f);
    CHECK(c.failed());
    CHECK(c.error_text() == "cannot build");
    CHECK(kinds(col) == std::vector<ipc_kind>{ipc_kind::component_error});
    CHECK(f.sched.live() == 0);
    CHECK_THROWS_AS(carousel(carousel::factory()), bad_component);
}

TEST_CASE("carousel: a chooser joined to a carousel plays a list, then ends", "[carousel]") {
    // Kamaelia's JoinChooserToCarousel, as a graphline: each NEXT makes the
    // chooser send the next order; with none left it finishes.
    struct chooser : component {
        std::vector<order> orders;
        explicit chooser(std::vector<order> o) : orders(std::move(o)) {}
        task main() override {
            std::size_t i = 0;
            for (;;) {
                while (auto req = recv<std::string>()) {
                    if (i == orders.size()) {
                        co_await send(producer_finished(), "signal");
                        co_return;
                    }
                    order o = orders[i++];
                    co_await send(std::move(o));
                }
                co_await wait_for("inbox");
            }
        }
    };
    auto j = std::make_shared<journal>();
    fixture f;
    collector col;
    graphline g(
        {
            {{"CHOOSER", "outbox"}, {"CAROUSEL", "next"}},
            {{"CAROUSEL", "requestNext"}, {"CHOOSER", "inbox"}},
            {{"CHOOSER", "signal"}, {"CAROUSEL", "control"}},
            {{"CAROUSEL", "outbox"}, {"self", "outbox"}},
            {{"CAROUSEL", "signal"}, {"self", "signal"}},
        },
        named("CHOOSER", chooser({{order::play, "a", 2}, {order::play, "b", 1}})),
        named("CAROUSEL", carousel(make_children(j), true)));
    f.activate(g);
    f.activate(col);
    link_to(g, col);
    settle(f);
    CHECK(col.values<std::string>() == std::vector<std::string>{"a 1", "a 2", "b 1"});
    CHECK(kinds(col) == std::vector<ipc_kind>{ipc_kind::producer_finished});
    CHECK(g.finished());
    CHECK(f.sched.live() == 0);
    CHECK(j->created == j->destroyed);
}
