// The scheduler group: one thread per scheduler, components staying on the
// scheduler they were activated on, the CPU count `auto` means.
#include "thread_support.hpp"

#include <kamaelia/core/component.hpp>
#include <kamaelia/core/scheduler_group.hpp>

#include <catch2/catch.hpp>

#include <sched.h>

#include <atomic>
#include <set>
#include <thread>

using namespace kamaelia;

TEST_CASE("cpu_quota_limit reads a cgroup v2 cpu.max line", "[core][group]") {
    REQUIRE_FALSE(cpu_quota_limit("max 100000").has_value());
    REQUIRE_FALSE(cpu_quota_limit("max 100000\n").has_value());
    REQUIRE(cpu_quota_limit("200000 100000") == std::size_t{2});
    REQUIRE(cpu_quota_limit("150000 100000\n") == std::size_t{2}); // 1.5 CPUs: two threads
    REQUIRE(cpu_quota_limit("50000 100000") == std::size_t{1});
    REQUIRE(cpu_quota_limit("100000 100000") == std::size_t{1});
    // What does not parse means no limit, never zero threads.
    REQUIRE_FALSE(cpu_quota_limit("").has_value());
    REQUIRE_FALSE(cpu_quota_limit("garbage").has_value());
    REQUIRE_FALSE(cpu_quota_limit("0 100000").has_value());
    REQUIRE_FALSE(cpu_quota_limit("100000 0").has_value());
    REQUIRE_FALSE(cpu_quota_limit("12x 100000").has_value());
    REQUIRE_FALSE(cpu_quota_limit("-5 100000").has_value());
}

TEST_CASE("usable_cpus is at least one and within the affinity mask", "[core][group]") {
    std::size_t n = usable_cpus();
    REQUIRE(n >= 1);
    cpu_set_t set;
    CPU_ZERO(&set);
    REQUIRE(sched_getaffinity(0, sizeof set, &set) == 0);
    REQUIRE(n <= static_cast<std::size_t>(CPU_COUNT(&set)));
}

namespace {

// Counts `n` messages from its own producer, recording the threads it ran on.
struct counting_sink : component {
    int want;
    std::atomic<int>* done;
    std::set<std::thread::id> threads;
    bool on_own_thread = true;
    counting_sink(int n, std::atomic<int>* d) : want(n), done(d) {}
    task main() override {
        int got = 0;
        while (got < want) {
            threads.insert(std::this_thread::get_id());
            on_own_thread = on_own_thread && sched()->in_scheduler_thread();
            while (recv<int>()) ++got;
            if (got < want) co_await wait_any();
        }
        done->fetch_add(1);
    }
};

struct counting_source : component {
    int n;
    explicit counting_source(int count) : n(count) {}
    task main() override {
        for (int i = 0; i < n; ++i) {
            bool ok = co_await send(i);
            if (!ok) break;
        }
    }
};

} // namespace

TEST_CASE("a scheduler group runs a graph per scheduler, each on its own thread", "[core][group][threads]") {
    constexpr int messages = 20000;
    std::atomic<int> done{0};
    scheduler_group g(2);
    REQUIRE(g.size() == 2);
    for (std::size_t i = 0; i < 2; ++i) {
        // Built before start() on this thread: allowed, nothing runs yet.
        auto& src = g[i].spawn<counting_source>(messages);
        auto& dst = g[i].spawn<counting_sink>(messages, &done);
        component::link({src, "outbox"}, {dst, "inbox"});
        dst.in("inbox").set_limit(8); // the source parks and is woken many times
    }
    g.start();
    REQUIRE(g.running());
    auto deadline = std::chrono::steady_clock::now() + test::liveness_deadline;
    while (done.load() < 2 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    REQUIRE(done.load() == 2);
    g.join();
    REQUIRE_FALSE(g.running());
}

TEST_CASE("components stay on the scheduler they were activated on", "[core][group][threads]") {
    std::atomic<int> done{0};
    scheduler_group g(2);
    std::vector<std::unique_ptr<counting_sink>> sinks;
    std::vector<std::unique_ptr<counting_source>> sources;
    for (std::size_t i = 0; i < 2; ++i) {
        sources.push_back(std::make_unique<counting_source>(5000));
        sinks.push_back(std::make_unique<counting_sink>(5000, &done));
        component::link({*sources[i], "outbox"}, {*sinks[i], "inbox"});
        sinks[i]->in("inbox").set_limit(4);
        sources[i]->activate(g[i]);
        sinks[i]->activate(g[i]);
    }
    g.start();
    auto deadline = std::chrono::steady_clock::now() + test::liveness_deadline;
    while (done.load() < 2 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    REQUIRE(done.load() == 2);
    g.join();
    REQUIRE(sinks[0]->threads.size() == 1);
    REQUIRE(sinks[1]->threads.size() == 1);
    REQUIRE(sinks[0]->on_own_thread);
    REQUIRE(sinks[1]->on_own_thread);
    REQUIRE(*sinks[0]->threads.begin() != *sinks[1]->threads.begin());
    REQUIRE(*sinks[0]->threads.begin() != std::this_thread::get_id());
}

TEST_CASE("post() runs work on the scheduler's thread, join() stops busy schedulers", "[core][group][threads]") {
    // A component that never ends on its own: join() must still return.
    struct forever : component {
        task main() override {
            for (;;) co_await sleep_for(std::chrono::milliseconds(1));
        }
    };
    scheduler_group g(2);
    g.start();
    std::atomic<int> on_thread{0};
    test::latch_flag posted[2];
    for (std::size_t i = 0; i < 2; ++i) {
        scheduler* s = &g[i];
        g.post(i, [s, &on_thread, &posted, i] {
            if (s->in_scheduler_thread()) on_thread.fetch_add(1);
            s->spawn<forever>();
            posted[i].set();
        });
    }
    REQUIRE(posted[0].wait());
    REQUIRE(posted[1].wait());
    REQUIRE(on_thread.load() == 2);
    g.join(); // with a live component on each scheduler
    REQUIRE(g[0].live() == 1);
    REQUIRE(g[1].live() == 1);
}

#include "group_fixture.hpp"

namespace {

// Appends its tag to a shared log every `period`, `times` times.
struct periodic : component {
    std::vector<int>* log;
    int tag;
    std::chrono::seconds period;
    int times;
    periodic(std::vector<int>* l, int t, std::chrono::seconds p, int n) : log(l), tag(t), period(p), times(n) {}
    task main() override {
        for (int i = 0; i < times; ++i) {
            co_await sleep_for(period);
            log->push_back(tag);
        }
    }
};

} // namespace

TEST_CASE("group_fixture steps several schedulers on one manual clock", "[core][group]") {
    using namespace std::chrono_literals;
    test::group_fixture g(2);
    std::vector<int> log;
    auto& a = g.spawn<periodic>(0, &log, 0, 2s, 3);
    auto& b = g.spawn<periodic>(1, &log, 1, 3s, 2);
    REQUIRE(a.sched() == &g[0]);
    REQUIRE(b.sched() == &g[1]);
    g.settle();
    REQUIRE(log.empty());
    g.advance(2s); // t=2: a
    g.advance(1s); // t=3: b
    g.advance(1s); // t=4: a
    g.advance(2s); // t=6: a, b (scheduler 0 steps first)
    REQUIRE(log == std::vector<int>{0, 1, 0, 0, 1});
    REQUIRE(a.finished());
    REQUIRE(b.finished());
    REQUIRE(g[0].live() == 0);
    REQUIRE(g[1].live() == 0);
}

#include <kamaelia/net/server_core.hpp>

TEST_CASE("connection_caps count every shard's connections under one cap", "[core][group]") {
    connection_caps caps;
    // Two shards share it: the total cap is the server's, not a shard's.
    REQUIRE(caps.try_open("10.0.0.1", false, 3, 2));
    REQUIRE(caps.try_open("10.0.0.1", false, 3, 2));
    CHECK_FALSE(caps.try_open("10.0.0.1", false, 3, 2)); // per-address cap
    REQUIRE(caps.try_open("10.0.0.2", false, 3, 2));
    CHECK_FALSE(caps.try_open("10.0.0.3", false, 3, 2)); // total cap
    CHECK(caps.open() == 3);
    caps.close("10.0.0.1", false);
    CHECK(caps.open() == 2);
    REQUIRE(caps.try_open("10.0.0.1", false, 3, 2)); // room again, for that address too
    // Unix sockets have no address: only the total counts.
    caps.close("10.0.0.2", false);
    REQUIRE(caps.try_open("unix", true, 3, 1));
    CHECK_FALSE(caps.try_open("unix", true, 3, 1));
    caps.close("unix", true);
    // Ids are unique across the shards.
    CHECK(caps.next_id() == 1);
    CHECK(caps.next_id() == 2);
}
