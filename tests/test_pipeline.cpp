#include "chassis_support.hpp"

#include <kamaelia/chassis/pipeline.hpp>

#include <catch2/catch.hpp>

using namespace kamaelia;
using namespace kamaelia::test;

namespace {

auto plus(int n) {
    return [n](int x) { return x + n; };
}
auto times(int n) {
    return [n](int x) { return x * n; };
}

} // namespace

TEST_CASE("pipeline: links each stage to the next and surfaces the last one", "[pipeline]") {
    auto j = std::make_shared<journal>();
    fixture f;
    collector col;
    {
        pipeline p(feeder<int>({1, 2, 3, 4, 5}), mapper(j, "a", plus(1)), mapper(j, "b", times(10)));
        CHECK(p.size() == 3);
        CHECK(p.children().size() == 3);
        f.activate(p);
        f.activate(col);
        link_to(p, col);
        settle(f);
        CHECK(p.finished());
        CHECK(col.finished());
        CHECK(col.values<int>() == std::vector<int>{20, 30, 40, 50, 60});
        // the feeder's producer_finished travelled signal→control to the end
        CHECK(kinds(col) == std::vector<ipc_kind>{ipc_kind::producer_finished});
        CHECK(j->of("a") == std::vector<std::string>{"1", "2", "3", "4", "5", "control producer_finished"});
        CHECK(j->of("b") == std::vector<std::string>{"2", "3", "4", "5", "6", "control producer_finished"});
        CHECK(p.children().empty()); // children are destroyed as they end
    }
    CHECK(j->created == j->destroyed);
    CHECK(f.sched.live() == 0);
}

TEST_CASE("pipeline: its inbox and control pass through to the first stage, in order", "[pipeline]") {
    auto j = std::make_shared<journal>();
    fixture f;
    collector col;
    feeder<int> in(iota_vec(1, 1000)); // more than an inbox holds: back-pressure on the way
    pipeline p(mapper(j, "a", plus(0)), mapper(j, "b", times(2)));
    component::link({in, "outbox"}, {p, "inbox"});
    component::link({in, "signal"}, {p, "control"});
    link_to(p, col);
    f.activate(in);
    f.activate(p);
    f.activate(col);
    settle(f);
    REQUIRE(col.finished());
    std::vector<int> expect;
    for (int i = 1; i <= 1000; ++i) expect.push_back(2 * i);
    CHECK(col.values<int>() == expect);
    CHECK(kinds(col) == std::vector<ipc_kind>{ipc_kind::producer_finished});
    CHECK(p.finished());
    CHECK(f.sched.live() == 0);
}

TEST_CASE("pipeline: a passthrough link made after data arrived carries the data on", "[pipeline]") {
    auto j = std::make_shared<journal>();
    fixture f;
    collector col;
    pipeline p(mapper(j, "a", plus(1)));
    // Delivered before the pipeline runs: waits in its inbox, moves to the stage when wired.
    deliver(p, "inbox", message(7));
    deliver(p, "inbox", message(8));
    deliver(p, "control", message(producer_finished()));
    f.activate(p);
    f.activate(col);
    link_to(p, col);
    settle(f);
    CHECK(col.values<int>() == std::vector<int>{8, 9});
    CHECK(kinds(col) == std::vector<ipc_kind>{ipc_kind::producer_finished});
    CHECK(f.sched.live() == 0);
}

TEST_CASE("pipeline: shutdown_microprocess on control stops every stage and comes out of signal", "[pipeline]") {
    auto j = std::make_shared<journal>();
    fixture f;
    collector col;
    pipeline p(source(j, "src", {1, 2}), mapper(j, "m", plus(100)), mapper(j, "n", plus(1000)));
    f.activate(p);
    f.activate(col);
    link_to(p, col);
    settle(f);
    CHECK(col.values<int>() == std::vector<int>{1101, 1102});
    CHECK_FALSE(p.finished()); // the source waits to be told
    deliver(p, "control", message(shutdown_microprocess()));
    settle(f);
    CHECK(p.finished());
    CHECK(kinds(col) == std::vector<ipc_kind>{ipc_kind::shutdown_microprocess});
    CHECK(j->has("src:control shutdown_microprocess"));
    CHECK(j->has("m:control shutdown_microprocess"));
    CHECK(j->has("n:control shutdown_microprocess"));
    CHECK(f.sched.live() == 0);
    CHECK(j->created == j->destroyed);
}

TEST_CASE("pipeline: run() on a temporary runs it to the end", "[pipeline]") {
    auto j = std::make_shared<journal>();
    pipeline(feeder<int>({1, 2, 3}), mapper(j, "a", times(3)), taker(j, "t", -1)).run();
    CHECK(j->of("t") == std::vector<std::string>{"start", "3", "6", "9", "control producer_finished", "told"});
    CHECK(j->created == j->destroyed);
    CHECK(scheduler::default_scheduler().live() == 0);
}

TEST_CASE("pipeline: nests, at either end and in the middle", "[pipeline]") {
    auto j = std::make_shared<journal>();
    fixture f;
    collector col;
    pipeline p(pipeline(feeder<int>({1, 2, 3}), mapper(j, "a", plus(1))),
               pipeline(mapper(j, "b", times(10)), mapper(j, "c", plus(5))), mapper(j, "d", times(-1)));
    f.activate(p);
    f.activate(col);
    link_to(p, col);
    settle(f);
    CHECK(col.values<int>() == std::vector<int>{-25, -35, -45});
    CHECK(kinds(col) == std::vector<ipc_kind>{ipc_kind::producer_finished});
    CHECK(p.finished());
    CHECK(f.sched.live() == 0);
    CHECK(j->created == j->destroyed);
}

TEST_CASE("pipeline: stages may be given as unique_ptrs and the pipeline moved before it runs", "[pipeline]") {
    auto j = std::make_shared<journal>();
    fixture f;
    collector col;
    auto stage = std::make_unique<mapper>(j, "a", plus(2));
    mapper* raw = stage.get();
    std::unique_ptr<component> base = std::make_unique<feeder<int>>(std::vector<int>{1, 2});
    pipeline p1(std::move(base), std::move(stage));
    pipeline p2(std::move(p1)); // components may move before activation
    CHECK(p2.size() == 2);
    CHECK(raw->parent() == &p2);
    f.activate(p2);
    f.activate(col);
    link_to(p2, col);
    settle(f);
    CHECK(col.values<int>() == std::vector<int>{3, 4});
    CHECK(f.sched.live() == 0);
}

TEST_CASE("pipeline: moving a running pipeline is refused", "[pipeline]") {
    auto j = std::make_shared<journal>();
    fixture f;
    pipeline p(source(j, "s", {}));
    f.activate(p);
    CHECK_THROWS_AS(pipeline(std::move(p)), bad_state);
    deliver(p, "control", message(shutdown_microprocess()));
    settle(f);
    CHECK(f.sched.live() == 0);
}

TEST_CASE("pipeline: circular links the last stage back to the first", "[pipeline]") {
    // A ball bounced between two stages: "first" adds one and passes it on,
    // "second" adds one and passes it back, until it reaches 6.
    struct bouncer : counted {
        using counted::counted;
        task main() override {
            co_await send(0);
            for (;;) {
                while (auto v = recv<int>()) {
                    note(std::to_string(*v));
                    if (*v >= 6) {
                        co_await send(producer_finished(), "signal");
                        co_return;
                    }
                    int out = *v + 1;
                    co_await send(out);
                }
                co_await wait_for("inbox");
            }
        }
    };
    auto j = std::make_shared<journal>();
    fixture f;
    collector col;
    pipeline p = pipeline::circular(bouncer(j, "first"), mapper(j, "second", plus(1)));
    CHECK(p.is_circular());
    f.activate(p);
    f.activate(col);
    link_to(p, col);
    settle(f);
    CHECK(j->of("first") == std::vector<std::string>{"1", "3", "5", "7"});
    // the second stage heard the first's producer_finished and ended
    CHECK(j->has("second:control producer_finished"));
    CHECK(p.finished());
    // nothing surfaces from a ring
    CHECK(col.items.empty());
    CHECK(col.controls.empty());
    deliver(col, "control", message(producer_finished()));
    settle(f);
    CHECK(f.sched.live() == 0);
}

TEST_CASE("pipeline: circular still takes input and control at the first stage", "[pipeline]") {
    auto j = std::make_shared<journal>();
    fixture f;
    // The ring is fed from outside: 0 goes round, "a" adding one each time,
    // until "b" has taken four values.
    pipeline p = pipeline::circular(mapper(j, "a", plus(1)), taker(j, "b", 4));
    deliver(p, "inbox", message(0));
    f.activate(p);
    settle(f);
    // 0 → a → 1 → b → a → 2 → b → ... b takes four values, then ends and signals a
    CHECK(j->of("b") == std::vector<std::string>{"start", "1", "2", "3", "4", "done"});
    CHECK(j->has("a:control producer_finished"));
    CHECK(p.finished());
    CHECK(f.sched.live() == 0);
}

TEST_CASE("pipeline: an integer sets the next stage's inbox limit, a policy the link into it", "[pipeline]") {
    // A stage that reads nothing until its control says the producer has
    // finished: with a bound of 2 and drop_oldest, only the last two values
    // are left for it.
    struct late_reader : counted {
        using counted::counted;
        task main() override {
            co_await wait_for("control");
            while (auto v = recv<int>()) {
                int out = *v;
                co_await send(out);
            }
            control_says_end();
            forward_end();
        }
    };
    auto j = std::make_shared<journal>();
    fixture f;
    collector col;
    auto reader = std::make_unique<late_reader>(j, "r");
    late_reader* r = reader.get();
    pipeline p(feeder<int>(iota_vec(1, 10)), 2, delivery_policy::drop_oldest, std::move(reader));
    f.activate(p);
    f.activate(col);
    link_to(p, col);
    f.step(); // the pipeline ran once: wired, children not yet run
    CHECK(r->in("inbox").limit() == 2);
    CHECK(p.children().front()->out("outbox").policy() == delivery_policy::drop_oldest);
    settle(f);
    CHECK(col.values<int>() == std::vector<int>{9, 10});
    CHECK(kinds(col) == std::vector<ipc_kind>{ipc_kind::producer_finished});
    CHECK(f.sched.live() == 0);
}

TEST_CASE("pipeline: malformed stage lists are refused", "[pipeline]") {
    auto j = std::make_shared<journal>();
    CHECK_THROWS_AS(pipeline(mapper(j, "a", plus(1)), 5), bad_state); // a limit with no stage after it
    CHECK_THROWS_AS(pipeline(0, mapper(j, "a", plus(1))), bad_state); // a limit of 0
    CHECK_THROWS_AS(pipeline(std::unique_ptr<component>()), bad_component);
    CHECK(j->created == j->destroyed);
}

TEST_CASE("pipeline: an empty pipeline ends at once", "[pipeline]") {
    fixture f;
    pipeline p;
    f.activate(p);
    settle(f);
    CHECK(p.finished());
    CHECK(f.sched.live() == 0);
}

TEST_CASE("pipeline: a stage that throws ends the pipeline cleanly", "[pipeline]") {
    auto j = std::make_shared<journal>();
    fixture f;
    collector col;
    // The source never ends by itself: the pipeline tells it to stop.
    pipeline p(source(j, "src", {1, 2, 3, 4}), thrower(j, "boom", 2), mapper(j, "after", plus(10)));
    f.activate(p);
    f.activate(col);
    link_to(p, col);
    settle(f);
    CHECK(p.finished());
    CHECK_FALSE(p.failed()); // the pipeline itself did not fail
    CHECK(col.values<int>() == std::vector<int>{11, 12});
    // downstream heard of the failure through the thrower's signal...
    REQUIRE(col.controls.size() == 1);
    CHECK(col.controls[0].kind == ipc_kind::component_error);
    CHECK(j->has("after:control component_error boom from boom"));
    // ...and upstream was told to stop
    CHECK(j->has("src:end"));
    CHECK(f.sched.live() == 0);
    CHECK(j->created == j->destroyed);
}

TEST_CASE("pipeline: a stage that throws inside a nested pipeline still ends the outer one", "[pipeline]") {
    auto j = std::make_shared<journal>();
    fixture f;
    collector col;
    // The inner pipeline does not fail itself (it ends, passing the
    // component_error on); the outer one stops the never-ending source
    // because its downstream has gone.
    pipeline p(source(j, "src", {1, 2, 3}), pipeline(thrower(j, "boom", 1), mapper(j, "in", plus(1))),
               mapper(j, "out", plus(10)));
    f.activate(p);
    f.activate(col);
    link_to(p, col);
    settle(f);
    CHECK(p.finished());
    CHECK(col.values<int>() == std::vector<int>{12});
    CHECK(kinds(col) == std::vector<ipc_kind>{ipc_kind::component_error});
    CHECK(j->has("src:end"));
    CHECK(f.sched.live() == 0);
    CHECK(j->created == j->destroyed);
}

TEST_CASE("pipeline: a stage that ends early stops the stages before it (SIGPIPE)", "[pipeline]") {
    auto j = std::make_shared<journal>();
    fixture f;
    collector col;
    // "head" takes two values and ends; the source would otherwise run on.
    pipeline p(source(j, "src", {1, 2, 3, 4}), mapper(j, "m", plus(0)), taker(j, "head", 2));
    f.activate(p);
    f.activate(col);
    link_to(p, col);
    settle(f);
    CHECK(p.finished());
    CHECK(col.values<int>() == std::vector<int>{1, 2});
    CHECK(kinds(col) == std::vector<ipc_kind>{ipc_kind::producer_finished}); // head's own
    CHECK(j->has("src:end"));
    // told why: "stage taker_<id> ended"
    bool told = false;
    for (auto& e : j->of("m"))
        told = told ||
               (e.rfind("control shutdown_microprocess stage taker_", 0) == 0 && e.substr(e.size() - 6) == " ended");
    CHECK(told);
    CHECK(f.sched.live() == 0);
}

TEST_CASE("pipeline: a stage that ends releases the stage parked on its full inbox", "[pipeline]") {
    // Reads one value, lingers a second, ends with the rest unread.
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
    feeder<int>* fd = nullptr;
    {
        auto feed = std::make_unique<feeder<int>>(iota_vec(1, 1000));
        fd = feed.get();
        pipeline p(std::move(feed), one_then_linger(j, "r"));
        f.activate(p);
        settle(f);
        // the feeder filled the reader's inbox (bound 256) and waits for room
        CHECK(p.children().size() == 2);
        CHECK(p.children().back()->in("inbox").parked_senders() == 1);
        CHECK(fd->state() == component_state::active);
        // The reader ends; the pipeline destroys it, which frees the feeder,
        // whose later sends go nowhere: everything ends.
        advance_by(f, std::chrono::seconds(1));
        CHECK(j->of("r") == std::vector<std::string>{"1", "end"});
        CHECK(p.finished());
    }
    CHECK(f.sched.live() == 0);
    CHECK(j->created == j->destroyed);
}

TEST_CASE("pipeline: after the first stage ends, control goes to the stages still running", "[pipeline]") {
    auto j = std::make_shared<journal>();
    fixture f;
    collector col;
    // The feeder ends without a word on signal, so "m" runs on.
    pipeline p(feeder<int>({1, 2}, false), mapper(j, "m", plus(1)));
    f.activate(p);
    f.activate(col);
    link_to(p, col);
    settle(f);
    CHECK(col.values<int>() == std::vector<int>{2, 3});
    CHECK_FALSE(p.finished());
    deliver(p, "inbox", message(50)); // no first stage to read it: discarded
    settle(f);
    deliver(p, "control", message(shutdown_microprocess()));
    settle(f);
    CHECK(p.finished());
    CHECK(col.values<int>() == std::vector<int>{2, 3});
    CHECK(kinds(col) == std::vector<ipc_kind>{ipc_kind::shutdown_microprocess});
    CHECK(f.sched.live() == 0);
}

TEST_CASE("pipeline: is owned by the scheduler when spawned and leaves nothing behind", "[pipeline]") {
    auto j = std::make_shared<journal>();
    {
        fixture f;
        f.spawn<pipeline>(feeder<int>({1}), mapper(j, "a", plus(1)), taker(j, "t", -1));
        settle(f);
        CHECK(f.sched.live() == 0);
        CHECK(f.sched.top_level().empty());
    }
    CHECK(j->of("t") == std::vector<std::string>{"start", "2", "control producer_finished", "told"});
    CHECK(j->created == j->destroyed);
}
