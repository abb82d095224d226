// threaded_component: blocking code on its own thread with the component API
// (docs/ORIGINAL.md, Core: threaded components): same API, data precedes
// control, an exception surfaces.
#include "fixture.hpp"
#include "thread_support.hpp"

#include <kamaelia/core/threaded_component.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

using namespace kamaelia;
using kamaelia::test::collector;
using kamaelia::test::feeder;
using kamaelia::test::latch_flag;
using kamaelia::test::run_within;
using namespace std::chrono_literals;

namespace {

// Sends 0..n-1, then producer_finished out of "signal".
struct threaded_producer : threaded_component {
    int n;
    std::atomic<int>* produced;
    threaded_producer(int count, std::atomic<int>* p = nullptr, std::size_t limit = default_queue_limit)
        : threaded_component(limit),
          n(count),
          produced(p) {}
    void thread_main() override {
        for (int i = 0; i < n; ++i) {
            send(i);
            if (produced) produced->fetch_add(1, std::memory_order_relaxed);
        }
        forward_shutdown();
    }
};

// Receives ints until the end notice; records them and what it saw at the end.
struct threaded_consumer : threaded_component {
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

// A coroutine consumer that is slow on purpose (yields between messages) and
// checks that the producing thread never runs further ahead than the buffers
// between them allow.
struct slow_consumer : component {
    std::atomic<int>* produced;
    int bound;
    int consumed = 0;
    int worst_lead = 0;
    bool in_order = true; // checked by the test (Catch2 asserts on its own thread only)
    slow_consumer(std::atomic<int>* p, int b) : produced(p), bound(b) {}
    task main() override {
        while (!shutdown_requested()) {
            while (auto v = recv<int>()) {
                if (*v != consumed) in_order = false;
                ++consumed;
                int lead = produced->load(std::memory_order_relaxed) - consumed;
                if (lead > worst_lead) worst_lead = lead;
                for (int i = 0; i < 3; ++i) co_await yield();
            }
            co_await wait_any();
        }
    }
};

} // namespace

TEST_CASE("threaded producer to coroutine consumer: order and count", "[threaded][threads]") {
    scheduler s;
    threaded_producer p(5000);
    collector c;
    p.activate(s);
    c.activate(s);
    component::link({p, "outbox"}, {c, "inbox"});
    component::link({p, "signal"}, {c, "control"});
    REQUIRE(run_within(s));
    std::vector<int> v = c.values<int>();
    REQUIRE(v.size() == 5000);
    for (int i = 0; i < 5000; ++i) REQUIRE(v[i] == i);
    REQUIRE(c.controls.size() == 1);
    REQUIRE(c.controls[0].kind == ipc_kind::producer_finished);
    REQUIRE(p.finished());
    REQUIRE_FALSE(p.failed());
}

TEST_CASE("a slow consumer stops a fast thread: bounded buffering, nothing lost", "[threaded][threads][flow]") {
    constexpr int n = 3000;
    constexpr int queue_limit = 16;
    constexpr int inbox_limit = 8;
    std::atomic<int> produced{0};
    scheduler s;
    threaded_producer p(n, &produced, queue_limit);
    // Out-queue + the proxy's one parked send + the consumer's inbox + the one in hand.
    slow_consumer c(&produced, queue_limit + 1 + inbox_limit + 1);
    c.in("inbox").set_limit(inbox_limit);
    p.activate(s);
    c.activate(s);
    component::link({p, "outbox"}, {c, "inbox"});
    component::link({p, "signal"}, {c, "control"});
    REQUIRE(run_within(s));
    REQUIRE(c.consumed == n);
    REQUIRE(c.in_order);
    REQUIRE(c.worst_lead <= c.bound);
}

TEST_CASE("coroutine producer to threaded consumer: order, count, end notice", "[threaded][threads]") {
    scheduler s;
    std::vector<int> values;
    for (int i = 0; i < 2000; ++i) values.push_back(i);
    feeder<int> f(values);
    threaded_consumer c(64);
    collector after;
    f.activate(s);
    c.activate(s);
    after.activate(s);
    component::link({f, "outbox"}, {c, "inbox"});
    component::link({f, "signal"}, {c, "control"});
    component::link({c, "signal"}, {after, "control"});
    REQUIRE(run_within(s));
    REQUIRE(c.got == values);
    REQUIRE(c.end == ipc_kind::producer_finished);
    REQUIRE(after.controls.size() == 1);
    REQUIRE(after.controls[0].kind == ipc_kind::producer_finished);
}

namespace {
// Looks at "control" first: by the time the end notice is there, all the
// data sent before it must already be queued for the thread.
struct control_first : threaded_component {
    std::size_t data_when_control_arrived = 0;
    using threaded_component::threaded_component;
    void thread_main() override {
        auto m = recv_message_wait("control");
        data_when_control_arrived = data_ready("inbox");
        while (recv_message()) {}
    }
};
} // namespace

TEST_CASE("data precedes control on the way in", "[threaded][threads][control]") {
    scheduler s;
    std::vector<int> values(100, 7);
    feeder<int> f(values);
    control_first c(1000);
    f.activate(s);
    c.activate(s);
    component::link({f, "outbox"}, {c, "inbox"});
    component::link({f, "signal"}, {c, "control"});
    REQUIRE(run_within(s));
    REQUIRE(c.data_when_control_arrived == 100);
}

TEST_CASE("data precedes control through a small queue, and signal follows the data out",
          "[threaded][threads][control]") {
    // Queues of 2 and a receiver bounded at 1: every message waits somewhere,
    // and neither end notice may overtake the data before it.
    scheduler s;
    std::vector<int> values;
    for (int i = 0; i < 300; ++i) values.push_back(i);
    feeder<int> f(values);
    struct relaying : threaded_component {
        using threaded_component::threaded_component;
        void thread_main() override {
            while (!shutdown_requested()) {
                while (auto v = recv<int>()) send(*v);
                wait();
            }
            forward_shutdown();
        }
    } r(2);
    collector out;
    out.in("inbox").set_limit(1);
    f.activate(s);
    r.activate(s);
    out.activate(s);
    component::link({f, "outbox"}, {r, "inbox"});
    component::link({f, "signal"}, {r, "control"});
    component::link({r, "outbox"}, {out, "inbox"});
    component::link({r, "signal"}, {out, "control"});
    REQUIRE(run_within(s));
    REQUIRE(out.values<int>() == values);
    REQUIRE(out.controls.size() == 1);
    REQUIRE(out.controls[0].kind == ipc_kind::producer_finished);
}

namespace {
struct failing : threaded_component {
    void thread_main() override {
        send(1);
        throw std::runtime_error("database is gone");
    }
};
} // namespace

TEST_CASE("an exception on the thread surfaces as a component failure", "[threaded][threads][failure]") {
    scheduler s;
    failing t;
    collector c;
    c.stop_on_end = true;
    t.activate(s);
    c.activate(s);
    component::link({t, "outbox"}, {c, "inbox"});
    component::link({t, "signal"}, {c, "control"});
    REQUIRE(run_within(s));
    REQUIRE(t.failed());
    REQUIRE(t.error_text() == "database is gone");
    // What it sent before failing was delivered first, then the report.
    REQUIRE(c.values<int>() == std::vector<int>{1});
    REQUIRE(c.controls.size() == 1);
    REQUIRE(c.controls[0].kind == ipc_kind::component_error);
    REQUIRE(c.controls[0].text == "database is gone");
    REQUIRE(c.controls[0].from == t.id());
    REQUIRE(s.stats().failures == 1);
}

namespace {
// Blocks in recv_wait() until stopped; says how its thread ended.
struct blocked_reader : threaded_component {
    latch_flag* started;
    latch_flag* saw_stop;
    blocked_reader(latch_flag* st, latch_flag* stop) : started(st), saw_stop(stop) {}
    ~blocked_reader() override { stop_thread(); } // thread_main uses our members
    void thread_main() override {
        started->set();
        try {
            recv_message_wait("inbox");
        } catch (const thread_stopped&) {
            saw_stop->set();
            throw;
        }
    }
};

// Sends until its out-queue and the receiver are full, says so, then blocks in send().
struct blocked_writer : threaded_component {
    latch_flag* about_to_block;
    latch_flag* saw_stop;
    int capacity; // messages that fit before a send must block
    blocked_writer(latch_flag* ab, latch_flag* stop, int cap)
        : threaded_component(2),
          about_to_block(ab),
          saw_stop(stop),
          capacity(cap) {}
    ~blocked_writer() override { stop_thread(); }
    void thread_main() override {
        try {
            for (int i = 0; i < capacity; ++i) send(i);
            about_to_block->set();
            for (;;) send(-1);
        } catch (const thread_stopped&) {
            saw_stop->set();
            throw;
        }
    }
};

struct never_reads : component {
    task main() override {
        for (;;) co_await wait_for("control");
    }
};

// Stops its target when anything arrives (a supervisor, in miniature).
struct stopper : component {
    component* target;
    explicit stopper(component* t) : target(t) {}
    task main() override {
        co_await wait_for("inbox");
        target->stop();
    }
};
} // namespace

TEST_CASE("stop() ends a component whose thread is blocked in a wait", "[threaded][threads][lifecycle]") {
    scheduler s;
    latch_flag started, saw_stop;
    blocked_reader r(&started, &saw_stop);
    stopper st(&r);
    r.activate(s);
    st.activate(s);
    kamaelia::test::forever_runner run(s);
    REQUIRE(started.wait());
    s.post([&] { deliver(st, "inbox", message(1)); });
    // Joined by the scheduler while it keeps running: no teardown needed.
    REQUIRE(saw_stop.wait());
    run.stop();
    REQUIRE(r.finished());
    REQUIRE_FALSE(r.failed()); // a stop is not a failure
}

TEST_CASE("destroying the scheduler releases a thread blocked on a full queue", "[threaded][threads][lifecycle]") {
    latch_flag about_to_block, saw_stop;
    {
        scheduler s;
        // Queue of 2, the receiver's inbox of 1 and the proxy's one parked send.
        auto& w = s.spawn<blocked_writer>(&about_to_block, &saw_stop, 4);
        auto& sink = s.spawn<never_reads>();
        sink.in("inbox").set_limit(1);
        component::link({w, "outbox"}, {sink, "inbox"});
        kamaelia::test::forever_runner run(s);
        REQUIRE(about_to_block.wait());
        run.stop();
        REQUIRE_FALSE(saw_stop.is_set());
    } // ~scheduler takes the graph down: the blocked thread must return and be joined
    REQUIRE(saw_stop.is_set());
}

TEST_CASE("deleting a running threaded component joins its thread", "[threaded][threads][lifecycle]") {
    latch_flag started, saw_stop;
    scheduler s;
    auto r = std::make_unique<blocked_reader>(&started, &saw_stop);
    r->activate(s);
    {
        kamaelia::test::forever_runner run(s);
        REQUIRE(started.wait());
    }
    r.reset(); // the scheduler is not running: this thread may destroy it
    REQUIRE(saw_stop.is_set());
}

namespace {
// Blocks in something our waits cannot reach; interrupt() gets it out.
struct external_blocker : threaded_component {
    std::mutex m;
    std::condition_variable cv;
    bool interrupted = false;
    latch_flag* started;
    latch_flag reached; // interrupt() ran
    explicit external_blocker(latch_flag* st) : started(st) {}
    ~external_blocker() override { stop_thread(); }
    void thread_main() override {
        std::unique_lock<std::mutex> lk(m);
        started->set();
        cv.wait(lk, [&] { return interrupted; });
    }
    void interrupt() noexcept override {
        std::lock_guard<std::mutex> lk(m);
        interrupted = true;
        cv.notify_all();
        reached.set();
    }
};
} // namespace

TEST_CASE("stopping calls interrupt() to reach code blocked elsewhere", "[threaded][threads][lifecycle]") {
    scheduler s;
    latch_flag started;
    external_blocker b(&started);
    stopper st(&b);
    b.activate(s);
    st.activate(s);
    REQUIRE_FALSE(started.is_set()); // the thread starts with the first run of the proxy
    kamaelia::test::forever_runner run(s);
    REQUIRE(started.wait());
    s.post([&] { deliver(st, "inbox", message(1)); });
    REQUIRE(b.reached.wait());
    run.stop();
    REQUIRE(b.interrupted);
    REQUIRE(b.finished());
}

namespace {
// Exercises the receiving side's edges and reports what it saw.
struct recv_prober : threaded_component {
    bool timed_out_empty = false;
    bool wrong_type_threw = false;
    bool kept_after_mismatch = false;
    bool bad_box_threw = false;
    std::string first, second;
    ipc_kind control_kind = ipc_kind::producer_finished;
    recv_prober() : threaded_component(1) { declare_inbox("quiet", "never receives anything"); }
    void thread_main() override {
        timed_out_empty = !recv_wait<int>("quiet", 20ms).has_value();
        // The driver sends "hello", a notice on control, then "world". With
        // queues of 1, "world" must be queued before the notice is.
        first = recv_wait<std::string>("inbox").value_or("");
        auto notice = recv_wait<ipc>("control");
        if (notice) control_kind = notice->kind;
        try {
            (void)recv<int>("inbox");
        } catch (const type_mismatch&) {
            wrong_type_threw = true;
        }
        second = recv<std::string>("inbox").value_or("");
        kept_after_mismatch = !second.empty();
        try {
            (void)data_ready("nope");
        } catch (const bad_box&) {
            bad_box_threw = true;
        }
    }
};

struct recv_driver : component {
    task main() override {
        // Named locals: g++ 12 mishandles temporaries inside co_await.
        std::string hello = "hello", world = "world";
        ipc notice{ipc_kind::notify, "next", 0};
        co_await send(std::move(hello));
        co_await send(std::move(notice), "signal");
        co_await send(std::move(world));
    }
};
} // namespace

TEST_CASE("thread-side recv: timeout, type mismatch keeps the message, unknown box", "[threaded][threads]") {
    scheduler s;
    recv_prober p;
    recv_driver d;
    p.activate(s);
    d.activate(s);
    component::link({d, "outbox"}, {p, "inbox"});
    component::link({d, "signal"}, {p, "control"});
    REQUIRE(run_within(s));
    REQUIRE(p.timed_out_empty);
    REQUIRE(p.first == "hello");
    REQUIRE(p.control_kind == ipc_kind::notify);
    REQUIRE(p.wrong_type_threw);
    REQUIRE(p.kept_after_mismatch);
    REQUIRE(p.second == "world");
    REQUIRE(p.bad_box_threw);
    REQUIRE_FALSE(p.failed());
}

namespace {
// Fills everything with try_send until refused, opens the gate on "go", then
// finishes with a blocking send that has to wait for room.
struct try_sender : threaded_component {
    int accepted = 0;
    bool refused = false;
    try_sender() : threaded_component(1) { declare_outbox("go", "opens the gate"); }
    void thread_main() override {
        // Room for three: this queue, the proxy's parked send, the gate's inbox.
        for (int i = 0; i < 100 && !refused; ++i) {
            if (try_send(accepted)) {
                ++accepted;
            } else {
                refused = true;
            }
        }
        send(producer_finished(), "go");
        send(-1); // blocks until the gate reads
    }
};

// Reads nothing until told on control; then everything up to -1.
struct gate : component {
    std::vector<int> got;
    task main() override {
        co_await wait_for("control");
        for (;;) {
            while (auto v = recv<int>()) {
                if (*v == -1) co_return;
                got.push_back(*v);
            }
            co_await wait_for("inbox");
        }
    }
};
} // namespace

TEST_CASE("try_send refuses when the queue is full, send waits for room", "[threaded][threads][flow]") {
    scheduler s;
    try_sender t;
    gate g;
    g.in("inbox").set_limit(1);
    t.activate(s);
    g.activate(s);
    component::link({t, "outbox"}, {g, "inbox"});
    component::link({t, "go"}, {g, "control"});
    REQUIRE(run_within(s));
    REQUIRE(t.refused);
    REQUIRE(t.accepted >= 1);
    REQUIRE(t.accepted <= 3);
    std::vector<int> expected;
    for (int i = 0; i < t.accepted; ++i) expected.push_back(i);
    REQUIRE(g.got == expected);
}

TEST_CASE("a threaded component inside a parent ends with it", "[threaded][threads][children]") {
    struct parent : component {
        task main() override {
            for (component* c : children()) c->activate(*sched());
            while (!children_done()) co_await wait(ev_inbox | ev_children);
        }
    };
    scheduler s;
    auto& par = s.spawn<parent>();
    auto& kid = par.add_child(std::make_unique<threaded_producer>(100));
    auto& sink = par.add_child(std::make_unique<collector>());
    component::link({kid, "outbox"}, {sink, "inbox"});
    component::link({kid, "signal"}, {sink, "control"});
    REQUIRE(run_within(s));
    REQUIRE(s.live() == 0);
}
