// Core benchmarks: message hops, component size, spawn rate, backplane fan-out
// and ping-pong, all on one scheduler thread.
//
//   bench_core pipeline10 N        N ints: source -> 10 relay components -> counting sink
//   bench_core component_bytes K   K idle components, each suspended in wait_any()
//   bench_core spawn K [BATCH]     create + deliver one int + run + reap K one-shot components
//   bench_core backplane100 N      1 publisher, 100 subscribers, N messages each (windowed)
//   bench_core pingpong N          N round trips between two components
//   bench_core pipeline10_t2 N     pipeline10 with the stages alternating between 2 schedulers
//   bench_core shards N T          two independent pipeline10s (N ints each) on a group of T
//                                  schedulers (T=2: one each, on two threads; T=1: both on one)
//   bench_core sizes               sizeof / slab bytes of a component and its frame
//
// Each run prints one line:  <figure> value=<v> unit=<u> [key=value ...]
// scripts/bench runs every figure several times (one process per run), takes
// medians and prints them next to the CAF peer's (bench_caf_peer).
#include <kamaelia/core/component.hpp>
#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/core/scheduler_group.hpp>
#include <kamaelia/core/slab.hpp>

#if __has_include(<kamaelia/chassis/backplane.hpp>)
#include <kamaelia/chassis/backplane.hpp>
#define KAMAELIA_BENCH_HAVE_BACKPLANE 1
#endif

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace k = kamaelia;
using clk = std::chrono::steady_clock;

namespace {

double secs_since(clk::time_point t0) { return std::chrono::duration<double>(clk::now() - t0).count(); }

long rss_bytes() {
    std::ifstream f("/proc/self/statm");
    long size = 0, res = 0;
    f >> size >> res;
    return res * sysconf(_SC_PAGESIZE);
}

long arg(int argc, char** argv, int i, long def) { return argc > i ? std::atol(argv[i]) : def; }

// ---- pipeline10 ---------------------------------------------------------------

struct source : k::component {
    long n;
    explicit source(long n) : n(n) {}
    k::task main() override {
        for (long i = 0; i < n; ++i) co_await send(static_cast<int>(i));
        send_forced(k::producer_finished(), "signal");
    }
};

// A real relay: receives and sends, a batch per resume.
struct relay : k::component {
    k::task main() override {
        while (!shutdown_requested()) {
            while (auto v = recv<int>()) co_await send(*v);
            co_await wait_any();
        }
        forward_shutdown();
    }
};

// Counts into a result the benchmark owns (the scheduler deletes the sink when it ends).
struct sink_result {
    long count = 0;
    long long sum = 0;
    std::atomic<bool> done{false}; // set once, after the run (shards polls it from another thread)
};

struct counting_sink : k::component {
    sink_result* r;
    explicit counting_sink(sink_result* r) : r(r) {}
    k::task main() override {
        long count = 0;
        long long sum = 0;
        while (!shutdown_requested()) {
            while (auto v = recv<int>()) {
                ++count;
                sum += *v;
            }
            co_await wait_any();
        }
        r->count = count;
        r->sum = sum;
        r->done.store(true, std::memory_order_release);
    }
};

// source -> `stages` relays -> counting sink, on `s`.
void build_pipeline(k::scheduler& s, long n, int stages, sink_result* res) {
    auto& src = s.spawn<source>(n);
    k::component* prev = &src;
    for (int i = 0; i < stages; ++i) {
        auto& r = s.spawn<relay>();
        k::component::link({*prev, "outbox"}, {r, "inbox"});
        k::component::link({*prev, "signal"}, {r, "control"});
        prev = &r;
    }
    auto& sink = s.spawn<counting_sink>(res);
    k::component::link({*prev, "outbox"}, {sink, "inbox"});
    k::component::link({*prev, "signal"}, {sink, "control"});
}

bool pipeline_ok(const sink_result& r, long n) {
    return r.count == n && r.sum == static_cast<long long>(n) * (n - 1) / 2;
}

int pipeline(long n, int stages) {
    k::scheduler s;
    sink_result res;
    build_pipeline(s, n, stages, &res);
    auto t0 = clk::now();
    s.run();
    double dt = secs_since(t0);
    bool ok = pipeline_ok(res, n);
    std::printf("core.pipeline%d value=%.0f unit=hops/s n=%ld stages=%d secs=%.4f msgs_per_sec=%.0f ok=%d\n", stages,
                double(n) * (stages + 1) / dt, n, stages, dt, n / dt, ok ? 1 : 0);
    return ok ? 0 : 1;
}

// ---- shards: independent pipelines on a scheduler group ------------------------------
// Nothing is shared between the two pipelines: with two schedulers on two
// threads the figure should be close to twice the one-scheduler figure.
int shards(long n, int threads) {
    constexpr int pipes = 2, stages = 10;
    if (threads < 1) threads = 1;
    sink_result res[pipes];
    k::scheduler_group g(static_cast<std::size_t>(threads));
    for (int p = 0; p < pipes; ++p) build_pipeline(g[static_cast<std::size_t>(p % threads)], n, stages, &res[p]);
    auto t0 = clk::now();
    g.start();
    for (auto& r : res)
        while (!r.done.load(std::memory_order_acquire)) std::this_thread::sleep_for(std::chrono::microseconds(200));
    double dt = secs_since(t0);
    g.stop();
    g.join();
    bool ok = true;
    for (auto& r : res) ok = ok && pipeline_ok(r, n);
    std::printf("core.shards_t%d value=%.0f unit=hops/s n=%ld pipelines=%d stages=%d secs=%.4f ok=%d\n", threads,
                double(n) * (stages + 1) * pipes / dt, n, pipes, stages, dt, ok ? 1 : 0);
    return ok ? 0 : 1;
}

// ---- pipeline10_t2: one pipeline whose stages alternate between schedulers -----------
// Every hop crosses threads (source on 0, relay 1 on 1, relay 2 on 0, ...):
// the cost of cross-scheduler links, batched wake-ups and credit included.
int pipeline_cross(long n, int threads) {
    constexpr int stages = 10;
    if (threads < 1) threads = 1;
    sink_result res;
    k::scheduler_group g(static_cast<std::size_t>(threads));
    auto on = [&](int i) -> k::scheduler& { return g[static_cast<std::size_t>(i % threads)]; };
    auto& src = on(0).spawn<source>(n);
    k::component* prev = &src;
    for (int i = 1; i <= stages; ++i) {
        auto& r = on(i).spawn<relay>();
        k::component::link({*prev, "outbox"}, {r, "inbox"});
        k::component::link({*prev, "signal"}, {r, "control"});
        prev = &r;
    }
    auto& sink = on(stages + 1).spawn<counting_sink>(&res);
    k::component::link({*prev, "outbox"}, {sink, "inbox"});
    k::component::link({*prev, "signal"}, {sink, "control"});
    auto t0 = clk::now();
    g.start();
    while (!res.done.load(std::memory_order_acquire)) std::this_thread::sleep_for(std::chrono::microseconds(200));
    double dt = secs_since(t0);
    g.stop();
    g.join();
    bool ok = pipeline_ok(res, n);
    std::uint64_t wakeups = 0;
    for (std::size_t i = 0; i < g.size(); ++i) wakeups += g[i].wakeups_received();
    std::printf("core.pipeline%d_t%d value=%.0f unit=hops/s n=%ld stages=%d secs=%.4f msgs_per_sec=%.0f "
                "wakeups=%llu ok=%d\n",
                stages, threads, double(n) * (stages + 1) / dt, n, stages, dt, n / dt,
                static_cast<unsigned long long>(wakeups), ok ? 1 : 0);
    return ok ? 0 : 1;
}

// ---- component_bytes / sizes --------------------------------------------------------

struct idle : k::component {
    k::task main() override {
        while (!shutdown_requested()) co_await wait_any();
    }
};

int component_bytes(long k_count) {
    k::scheduler s;
    // Warm up: one component through its whole life (slab block, run queue, Asio).
    s.spawn<idle>().stop();
    s.run_until_idle();
    long r0 = rss_bytes();
    std::size_t slab0 = k::detail::slab_bytes_in_use();
    for (long i = 0; i < k_count; ++i) s.spawn<idle>();
    s.run_once(); // every one runs to its wait_any() and suspends there
    long r1 = rss_bytes();
    std::size_t slab1 = k::detail::slab_bytes_in_use();
    long live = static_cast<long>(s.live());
    bool ok = live == k_count;
    std::printf("core.component_bytes value=%.0f unit=B k=%ld rss_delta_mib=%.1f slab_bytes_per_component=%.0f "
                "sizeof_component=%zu live=%ld ok=%d\n",
                double(r1 - r0) / k_count, k_count, (r1 - r0) / 1048576.0, double(slab1 - slab0) / k_count,
                sizeof(idle), live, ok ? 1 : 0);
    return ok ? 0 : 1;
}

// Handles one message, then ends (CAF's peer: an actor that quits on one int).
struct one_shot : k::component {
    k::task main() override {
        while (!recv<int>()) co_await wait_any();
    }
};

// Slab bytes of a component object and of its coroutine frame (16-byte classes).
template <class C>
void size_of(k::scheduler& s, const char* name) {
    std::size_t a = k::detail::slab_bytes_in_use();
    auto c = std::make_unique<C>();
    std::size_t b = k::detail::slab_bytes_in_use();
    auto& ref = s.spawn(std::move(c)); // activation allocates the frame
    std::size_t d = k::detail::slab_bytes_in_use();
    std::printf("# sizes: %s sizeof=%zu slab(object)=%zu slab(frame)=%zu\n", name, sizeof(C), b - a, d - b);
    ref.stop();
    s.run_until_idle();
}

int sizes() {
    k::scheduler s;
    s.spawn<idle>().stop();
    s.run_until_idle();
    std::printf("# sizes: sizeof(component)=%zu sizeof(inbox)=%zu sizeof(outbox)=%zu sizeof(message)=%zu "
                "sizeof(ring)=%zu sizeof(component_ext)=%zu sizeof(send_awaiter)=%zu first ring=%zu+%zu bytes (slab)\n",
                sizeof(k::component), sizeof(k::inbox), sizeof(k::outbox), sizeof(k::message), sizeof(k::detail::ring),
                sizeof(k::detail::component_ext), sizeof(k::component::send_awaiter), sizeof(k::detail::ring),
                4 * sizeof(k::message));
    size_of<idle>(s, "idle(wait_any loop)");
    size_of<relay>(s, "relay(recv/send loop)");
    size_of<one_shot>(s, "one_shot");
    return 0;
}

// ---- spawn ------------------------------------------------------------------------

int spawn_bench(long k_count, long batch) {
    k::scheduler s;
    long done = 0;
    auto t0 = clk::now();
    while (done < k_count) {
        long b = std::min(batch, k_count - done);
        for (long i = 0; i < b; ++i) {
            auto& c = s.spawn<one_shot>();
            kamaelia::deliver(c, "inbox", k::message(1));
        }
        s.run();
        done += b;
    }
    double dt = secs_since(t0);
    bool ok = s.live() == 0;
    std::printf("core.spawn value=%.0f unit=components/s k=%ld batch=%ld secs=%.4f us_per_component=%.3f ok=%d\n",
                k_count / dt, k_count, batch, dt, dt / k_count * 1e6, ok ? 1 : 0);
    return ok ? 0 : 1;
}

// ---- pingpong ----------------------------------------------------------------------

struct pinger : k::component {
    long n;
    long* trips;
    pinger(long n, long* trips) : n(n), trips(trips) {}
    k::task main() override {
        long t = 0;
        for (long i = 0; i < n; ++i) {
            co_await send(static_cast<int>(i));
            std::optional<int> back;
            while (!(back = recv<int>())) co_await wait_any();
            if (*back == i) ++t;
        }
        *trips = t;
        send_forced(k::producer_finished(), "signal");
    }
};

struct ponger : k::component {
    k::task main() override {
        while (!shutdown_requested()) {
            while (auto v = recv<int>()) co_await send(*v);
            co_await wait_any();
        }
    }
};

int pingpong(long n) {
    k::scheduler s;
    long trips = 0;
    auto& a = s.spawn<pinger>(n, &trips);
    auto& b = s.spawn<ponger>();
    k::component::link({a, "outbox"}, {b, "inbox"});
    k::component::link({b, "outbox"}, {a, "inbox"});
    k::component::link({a, "signal"}, {b, "control"});
    auto t0 = clk::now();
    s.run();
    double dt = secs_since(t0);
    bool ok = trips == n;
    std::printf("core.pingpong value=%.0f unit=round_trips/s n=%ld secs=%.4f ok=%d\n", n / dt, n, dt, ok ? 1 : 0);
    return ok ? 0 : 1;
}

// ---- backplane100 --------------------------------------------------------------------
//
// One publisher, SUBS subscribers, each counting. The backplane never
// suspends its publisher (a subscriber past its bound loses messages), so the
// publisher sends in windows of `bp_window` and waits for an ack from every
// subscriber before the next window: the same protocol as the CAF peer.

#ifdef KAMAELIA_BENCH_HAVE_BACKPLANE
constexpr int bp_window = 128; // below the default inbox bound (256)

struct bp_publisher : k::component {
    long n;
    int subs;
    bp_publisher(long n, int subs) : n(n), subs(subs) {}
    k::task main() override {
        long acks = 0;
        long sent = 0;
        while (sent < n) {
            long w = std::min<long>(bp_window, n - sent);
            for (long i = 0; i < w; ++i) co_await send(static_cast<int>(sent + i));
            sent += w;
            long want = acks + subs;
            for (;;) {
                while (recv<int>()) ++acks;
                if (acks >= want) break;
                co_await wait_any();
            }
        }
        send_forced(k::producer_finished(), "signal");
    }
};

struct bp_counter : k::component {
    long n;
    long* total;
    bp_counter(long n, long* total) : n(n), total(total) {}
    k::task main() override {
        long count = 0;
        while (count < n) {
            while (auto v = recv<int>()) {
                ++count;
                if (count % bp_window == 0 || count == n) co_await send(1);
            }
            if (count >= n) break;
            co_await wait_any();
        }
        *total += count;
    }
};

int backplane(long n, int subs) {
    k::scheduler s;
    long total = 0;
    // Run-queue order is spawn order: the backplane registers on activation,
    // publish_to links its inbox and every subscribe_to attaches in the first
    // cycle, before the publisher (spawned last) sends anything.
    auto& bp = s.spawn<k::backplane>("BENCH");
    auto& pub_to = s.spawn<k::publish_to>("BENCH");
    std::vector<k::component*> subscribers;
    std::vector<k::component*> counters;
    for (int i = 0; i < subs; ++i) {
        auto& sub = s.spawn<k::subscribe_to>("BENCH");
        auto& cnt = s.spawn<bp_counter>(n, &total);
        k::component::link({sub, "outbox"}, {cnt, "inbox"});
        subscribers.push_back(&sub);
        counters.push_back(&cnt);
    }
    auto& pub = s.spawn<bp_publisher>(n, subs);
    k::component::link({pub, "outbox"}, {pub_to, "inbox"});
    for (auto* c : counters) k::component::link({*c, "outbox"}, {pub, "inbox"}); // acks, many-to-one
    auto t0 = clk::now();
    // The publisher and the counters end on their own; the backplane,
    // publish_to and the subscribe_to components are stopped afterwards.
    while (total < n * subs) {
        if (!s.run_once()) break; // nothing left to run: some delivery was lost
    }
    double dt = secs_since(t0);
    unsigned long long dropped = bp.dropped();
    bp.stop();
    pub_to.stop();
    for (auto* c : subscribers) c->stop();
    s.run_until_idle();
    bool ok = total == n * subs && dropped == 0;
    std::printf(
        "core.backplane%d value=%.0f unit=deliveries/s n=%ld subs=%d secs=%.4f delivered=%ld dropped=%llu ok=%d\n",
        subs, double(total) / dt, n, subs, dt, total, dropped, ok ? 1 : 0);
    return ok ? 0 : 1;
}
#else
int backplane(long, int subs) {
    std::printf("core.backplane%d unavailable reason=no_backplane_header\n", subs);
    return 3;
}
#endif

} // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr,
                     "usage: %s pipeline10 N | component_bytes K | spawn K [BATCH] | backplane100 N | pingpong N | "
                     "pipeline10_t2 N | shards N T | "
                     "sizes\n",
                     argv[0]);
        return 2;
    }
    std::string mode = argv[1];
    try {
        if (mode == "pipeline10") return pipeline(arg(argc, argv, 2, 10'000'000), 10);
        if (mode == "component_bytes") return component_bytes(arg(argc, argv, 2, 100'000));
        if (mode == "spawn") return spawn_bench(arg(argc, argv, 2, 1'000'000), arg(argc, argv, 3, 1000));
        if (mode == "backplane100") return backplane(arg(argc, argv, 2, 100'000), 100);
        if (mode == "pingpong") return pingpong(arg(argc, argv, 2, 1'000'000));
        if (mode == "pipeline10_t2") return pipeline_cross(arg(argc, argv, 2, 2'000'000), 2);
        if (mode == "shards") return shards(arg(argc, argv, 2, 5'000'000), static_cast<int>(arg(argc, argv, 3, 2)));
        if (mode == "sizes") return sizes();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s: %s\n", mode.c_str(), e.what());
        return 1;
    }
    std::fprintf(stderr, "unknown figure %s\n", mode.c_str());
    return 2;
}
