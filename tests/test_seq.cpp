#include "chassis_support.hpp"

#include <kamaelia/chassis/pipeline.hpp>
#include <kamaelia/chassis/seq.hpp>

#include <catch2/catch.hpp>

using namespace kamaelia;
using namespace kamaelia::test;

namespace {

// Sends a greeting, then echoes n lines with its tag, then ends (saying
// producer_finished on its own signal, which seq must not let out).
struct stage : counted {
    int n;
    stage(journal_ptr j, std::string tag, int count) : counted(std::move(j), std::move(tag)), n(count) {}
    task main() override {
        note("start");
        std::string hello = tag + " ready";
        co_await send(std::move(hello));
        for (int got = 0; got < n;) {
            if (auto v = recv<int>()) {
                ++got;
                std::string line = tag + " " + std::to_string(*v);
                co_await send(std::move(line));
                continue;
            }
            if (control_says_end()) {
                note("told");
                forward_end();
                co_return;
            }
            co_await wait_any();
        }
        note("done");
        co_await send(producer_finished(), "signal");
    }
};

std::vector<std::string> strings(const collector& c) { return c.values<std::string>(); }

} // namespace

TEST_CASE("seq: runs stages one after another, each one's outbox on seq's", "[seq]") {
    auto j = std::make_shared<journal>();
    fixture f;
    collector col;
    feeder<int> in({1, 2, 3}, false);
    seq s(stage(j, "a", 1), stage(j, "b", 2));
    CHECK(s.size() == 2);
    component::link({in, "outbox"}, {s, "inbox"});
    link_to(s, col);
    f.activate(in);
    f.activate(s);
    f.activate(col);
    settle(f);
    CHECK(strings(col) == std::vector<std::string>{"a ready", "a 1", "b ready", "b 2", "b 3"});
    // the stages' own producer_finished did not leak: one, from seq, at the end
    CHECK(kinds(col) == std::vector<ipc_kind>{ipc_kind::producer_finished});
    CHECK(col.controls[0].from == s.id());
    CHECK(j->events == std::vector<std::string>{"a:start", "a:done", "b:start", "b:done"});
    CHECK(s.started() == 2);
    CHECK(s.finished());
    CHECK(f.sched.live() == 0);
    CHECK(j->created == j->destroyed);
}

TEST_CASE("seq: input a stage did not read moves to the next, nothing lost, in order", "[seq]") {
    auto j = std::make_shared<journal>();
    fixture f;
    collector col;
    SECTION("typed ahead before the seq started") {
        seq s(taker(j, "a", 2), taker(j, "b", 1), taker(j, "c", 3));
        for (int i = 1; i <= 6; ++i) deliver(s, "inbox", message(i));
        f.activate(s);
        f.activate(col);
        link_to(s, col);
        settle(f);
        CHECK(col.values<int>() == iota_vec(1, 6));
        CHECK(j->of("a") == std::vector<std::string>{"start", "1", "2", "done"});
        CHECK(j->of("b") == std::vector<std::string>{"start", "3", "done"});
        CHECK(j->of("c") == std::vector<std::string>{"start", "4", "5", "6", "done"});
        CHECK(kinds(col) == std::vector<ipc_kind>{ipc_kind::producer_finished});
    }
    SECTION("more than an inbox holds, with the sender parked on the finished stage") {
        // The feeder fills stage a's inbox (bound 256) and waits; a takes
        // one and ends. What a left, and what waits in the feeder, goes to b.
        feeder<int> in(iota_vec(1, 600), false);
        seq s(taker(j, "a", 1), taker(j, "b", 599));
        component::link({in, "outbox"}, {s, "inbox"});
        f.activate(in);
        f.activate(s);
        f.activate(col);
        link_to(s, col);
        settle(f);
        CHECK(col.values<int>() == iota_vec(1, 600));
        CHECK(j->of("b").size() == 601); // start, 599 values, done
        CHECK(kinds(col) == std::vector<ipc_kind>{ipc_kind::producer_finished});
    }
    CHECK(f.sched.live() == 0);
    CHECK(j->created == j->destroyed);
}

TEST_CASE("seq: factories make later stages only when their turn comes", "[seq]") {
    auto j = std::make_shared<journal>();
    fixture f;
    int made = 0;
    seq s(taker(j, "a", 1), [&made, j] {
        ++made;
        return taker(j, "b", 1);
    });
    s.then(seq::factory([&made, j]() -> std::unique_ptr<component> {
        ++made;
        return std::make_unique<taker>(j, "c", 1);
    }));
    s.then(std::make_unique<taker>(j, "d", 1));
    CHECK(s.size() == 4);
    f.activate(s);
    settle(f);
    CHECK(made == 0);
    CHECK(s.active() != nullptr);
    deliver(s, "inbox", message(1));
    settle(f);
    CHECK(made == 1);
    deliver(s, "inbox", message(2));
    settle(f);
    CHECK(made == 2);
    deliver(s, "inbox", message(3));
    deliver(s, "inbox", message(4));
    settle(f);
    CHECK(s.finished());
    CHECK(s.active() == nullptr);
    CHECK(j->of("d") == std::vector<std::string>{"start", "4", "done"});
    CHECK(f.sched.live() == 0);
}

TEST_CASE("seq: shutdown_microprocess stops the active stage and the seq", "[seq]") {
    auto j = std::make_shared<journal>();
    fixture f;
    collector col;
    int made = 0;
    seq s(stage(j, "a", 5), [&made, j] {
        ++made;
        return stage(j, "b", 1);
    });
    f.activate(s);
    f.activate(col);
    link_to(s, col);
    settle(f);
    deliver(s, "inbox", message(1));
    settle(f);
    // the stage waits for more input; the original could never stop it
    CHECK_FALSE(s.finished());
    deliver(s, "control", message(shutdown_microprocess("bye")));
    settle(f);
    CHECK(j->of("a") == std::vector<std::string>{"start", "control shutdown_microprocess bye", "told"});
    CHECK(made == 0); // later stages never start
    CHECK(s.finished());
    REQUIRE(col.controls.size() == 1);
    CHECK(col.controls[0].kind == ipc_kind::shutdown_microprocess);
    CHECK(col.controls[0].text == "bye");
    CHECK(strings(col) == std::vector<std::string>{"a ready", "a 1"});
    CHECK(f.sched.live() == 0);
    CHECK(j->created == j->destroyed);
}

TEST_CASE("seq: a finish goes to the active stage, which drains its input, later stages do not start", "[seq]") {
    auto j = std::make_shared<journal>();
    fixture f;
    collector col;
    ipc_kind kind = GENERATE(ipc_kind::producer_finished, ipc_kind::socket_shutdown);
    int made = 0;
    feeder<int> in({1, 2, 3}, false);
    seq s(mapper(j, "a", [](int x) { return -x; }), [&made, j] {
        ++made;
        return stage(j, "b", 1);
    });
    component::link({in, "outbox"}, {s, "inbox"});
    f.activate(in);
    f.activate(s);
    f.activate(col);
    link_to(s, col);
    settle(f);
    deliver(s, "control", message(ipc{kind, {}, 0}));
    settle(f);
    CHECK(col.values<int>() == std::vector<int>{-1, -2, -3});
    CHECK(j->of("a").back() == "control " + kind_name(kind));
    CHECK(made == 0);
    CHECK(kinds(col) == std::vector<ipc_kind>{kind}); // what seq received, passed on
    CHECK(f.sched.live() == 0);
}

TEST_CASE("seq: other control messages reach the active stage", "[seq]") {
    auto j = std::make_shared<journal>();
    fixture f;
    seq s(taker(j, "a", 1), taker(j, "b", 1));
    f.activate(s);
    settle(f);
    deliver(s, "control", message(ipc{ipc_kind::notify, "to a", 0}));
    settle(f);
    deliver(s, "inbox", message(1));
    settle(f);
    deliver(s, "control", message(ipc{ipc_kind::notify, "to b", 0}));
    settle(f);
    CHECK(j->has("a:control notify to a"));
    CHECK(j->has("b:control notify to b"));
    CHECK_FALSE(j->has("b:control notify to a"));
    deliver(s, "inbox", message(2));
    settle(f);
    CHECK(s.finished());
    CHECK(f.sched.live() == 0);
}

TEST_CASE("seq: a stage that throws ends the seq with component_error", "[seq]") {
    auto j = std::make_shared<journal>();
    fixture f;
    collector col;
    int made = 0;
    seq s(thrower(j, "bad", 1), [&made, j] {
        ++made;
        return taker(j, "never", 1);
    });
    deliver(s, "inbox", message(1));
    deliver(s, "inbox", message(2));
    f.activate(s);
    f.activate(col);
    link_to(s, col);
    settle(f);
    CHECK(s.finished());
    CHECK_FALSE(s.failed());
    CHECK(made == 0);
    CHECK(col.values<int>() == std::vector<int>{1});
    REQUIRE(col.controls.size() == 1);
    CHECK(col.controls[0].kind == ipc_kind::component_error);
    CHECK(col.controls[0].text.find("boom from bad") != std::string::npos);
    CHECK(f.sched.live() == 0);
    CHECK(j->created == j->destroyed);
}

TEST_CASE("seq: a factory that throws or returns nothing fails the seq", "[seq]") {
    fixture f;
    collector col;
    SECTION("throws") {
        seq s([]() -> std::unique_ptr<component> { throw std::runtime_error("no stage today"); });
        f.activate(s);
        f.activate(col);
        link_to(s, col);
        settle(f);
        CHECK(s.failed());
        CHECK(s.error_text() == "no stage today");
    }
    SECTION("returns nothing") {
        seq s([]() -> std::unique_ptr<component> { return nullptr; });
        f.activate(s);
        f.activate(col);
        link_to(s, col);
        settle(f);
        CHECK(s.failed());
    }
    CHECK(kinds(col) == std::vector<ipc_kind>{ipc_kind::component_error});
    CHECK(f.sched.live() == 0);
}

TEST_CASE("seq: an empty seq ends at once with producer_finished", "[seq]") {
    fixture f;
    collector col;
    seq s;
    f.activate(s);
    f.activate(col);
    link_to(s, col);
    settle(f);
    CHECK(kinds(col) == std::vector<ipc_kind>{ipc_kind::producer_finished});
    CHECK(f.sched.live() == 0);
}

TEST_CASE("seq: stages share typed state, the seq nests in a pipeline and holds one", "[seq]") {
    struct session {
        std::string user;
        int messages = 0;
    };
    // Stage 1 learns the user's number; stage 2 counts their messages;
    // stage 3 reports. Each holds the same shared_ptr<session>.
    struct login : component {
        std::shared_ptr<session> st;
        explicit login(std::shared_ptr<session> s) : st(std::move(s)) {}
        task main() override {
            co_await wait_for("inbox");
            st->user = "user" + std::to_string(*recv<int>());
            std::string line = "welcome " + st->user;
            co_await send(std::move(line));
        }
    };
    struct counter : component {
        std::shared_ptr<session> st;
        explicit counter(std::shared_ptr<session> s) : st(std::move(s)) {}
        task main() override {
            for (;;) {
                while (auto v = recv<int>()) {
                    if (*v == 0) co_return; // 0 logs out
                    ++st->messages;
                }
                if (shutdown_requested()) co_return;
                co_await wait_any();
            }
        }
    };
    struct report : component {
        std::shared_ptr<session> st;
        explicit report(std::shared_ptr<session> s) : st(std::move(s)) {}
        task main() override {
            std::string line = st->user + " sent " + std::to_string(st->messages);
            co_await send(std::move(line));
        }
    };
    fixture f;
    collector col;
    auto st = std::make_shared<session>();
    // "0" ends the counter; what follows it is for the stage after.
    pipeline p(feeder<int>({7, 1, 1, 1, 0}, false), seq(login(st), pipeline(counter(st)), [st] { return report(st); }));
    f.activate(p);
    f.activate(col);
    link_to(p, col);
    settle(f);
    CHECK(col.values<std::string>() == std::vector<std::string>{"welcome user7", "user7 sent 3"});
    CHECK(kinds(col) == std::vector<ipc_kind>{ipc_kind::producer_finished});
    CHECK(st.use_count() == 1); // every stage is gone
    CHECK(f.sched.live() == 0);
}

TEST_CASE("seq: a finish from upstream reaches a stage waiting for input (no leak, spec 5.3)", "[seq]") {
    auto j = std::make_shared<journal>();
    fixture f;
    collector col;
    // The connection goes away while the first stage waits for a line.
    pipeline p(feeder<int>({}, true), seq(stage(j, "login", 1), stage(j, "menu", 1)));
    f.activate(p);
    f.activate(col);
    link_to(p, col);
    settle(f);
    CHECK(p.finished());
    CHECK(j->of("login") == std::vector<std::string>{"start", "control producer_finished", "told"});
    CHECK(j->of("menu").empty());
    CHECK(kinds(col) == std::vector<ipc_kind>{ipc_kind::producer_finished});
    CHECK(f.sched.live() == 0);
    CHECK(j->created == j->destroyed);
}
