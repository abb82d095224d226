// The CAF 0.17 peer of bench_core: the same shapes, written the way CAF is
// meant to be used (event-based actors, one scheduler thread:
// scheduler.max-threads=1). Same figures, same output format:
//
//   bench_caf_peer pipeline10 N        N ints: source actor -> 10 forwarding actors -> counting
//                                      sink, credit-based flow control (bounded memory)
//   bench_caf_peer pipeline10_t2 N     pipeline10 on two worker threads (max-threads=2)
//   bench_caf_peer pipeline10_flood N  the reference shape: the main thread floods the chain
//   bench_caf_peer component_bytes K   K idle actors (RSS delta / K)
//   bench_caf_peer spawn K [BATCH]     spawn + one message + quit, K actors, BATCH at a time
//   bench_caf_peer backplane100 N      1 publisher fans N ints out to 100 actors (windowed)
//   bench_caf_peer pingpong N          N round trips between two actors
//
// Each run prints:  <figure> value=<v> unit=<u> [key=value ...]
// The chain (pipeline10_flood) and spawn shapes follow the reference CAF peer handed to the
// project; pipeline10 adds a source actor and credit-based flow control to the same chain.
// Every wait is bounded (120 s).
#include "caf/all.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

using namespace caf;
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

constexpr auto max_wait = std::chrono::seconds(120);

// ---- pipeline10: the reference chain ----------------------------------------------------

behavior forwarder(event_based_actor* self, actor next) {
    return {[=](int x) { self->send(next, x); }};
}

behavior counting_sink(event_based_actor* self, long n, actor report_to) {
    auto got = std::make_shared<long>(0);
    auto sum = std::make_shared<long long>(0);
    return {[=](int x) {
        *sum += x;
        if (++*got == n) {
            self->send(report_to, *got, *sum);
            self->quit();
        }
    }};
}

// The reference shape: the scoped (main-thread) actor floods the chain with N
// ints. CAF has no back-pressure, so the first mailbox grows to N messages
// (about 1 GB at N = 10M) and the main thread competes with the worker.
int pipeline_flood(actor_system& sys, long n, int stages) {
    scoped_actor self{sys};
    actor next = sys.spawn(counting_sink, n, actor{self});
    std::vector<actor> chain;
    for (int i = 0; i < stages; ++i) {
        next = sys.spawn(forwarder, next);
        chain.push_back(next);
    }
    auto t0 = clk::now();
    for (long i = 0; i < n; ++i) self->send(next, static_cast<int>(i));
    long got = -1;
    long long sum = 0;
    self->receive(
        [&](long g, long long s) {
            got = g;
            sum = s;
        },
        after(max_wait) >> [&] { got = -1; });
    double dt = secs_since(t0);
    bool ok = got == n && sum == static_cast<long long>(n) * (n - 1) / 2;
    std::printf("caf.pipeline%d_flood value=%.0f unit=hops/s n=%ld stages=%d secs=%.4f msgs_per_sec=%.0f ok=%d\n",
                stages, double(n) * (stages + 1) / dt, n, stages, dt, n / dt, ok ? 1 : 0);
    for (auto& a : chain) anon_send_exit(a, exit_reason::user_shutdown);
    return ok ? 0 : 1;
}

// Our shape: the source is an actor too (everything on the one worker
// thread), with credit-based flow control so memory stays bounded: the sink
// acks every `credit_batch` messages and the source keeps at most
// `credit_window` in flight (ours: at most 256 per inbox, bounded by design).
constexpr long credit_batch = 256;
constexpr long credit_window = 4 * credit_batch;
using credit_atom = atom_constant<atom("credit")>;

behavior acking_sink(event_based_actor* self, long n, actor source, actor report_to) {
    auto got = std::make_shared<long>(0);
    auto sum = std::make_shared<long long>(0);
    return {[=](int x) {
        *sum += x;
        ++*got;
        if (*got % credit_batch == 0) self->send(source, credit_atom::value);
        if (*got == n) {
            self->send(report_to, *got, *sum);
            self->quit();
        }
    }};
}

struct source_state {
    actor head;
    long next = 0;
    long acked = 0; // messages the sink has confirmed
};

behavior credit_source(stateful_actor<source_state>* self, long n) {
    auto fill = [=] {
        auto& st = self->state;
        long limit = std::min(n, st.acked + credit_window);
        for (; st.next < limit; ++st.next) self->send(st.head, static_cast<int>(st.next));
    };
    return {
        [=](actor head) {
            self->state.head = std::move(head);
            fill();
        },
        [=](credit_atom) {
            self->state.acked += credit_batch;
            fill();
            if (self->state.next >= n) self->quit();
        },
    };
}

int pipeline(actor_system& sys, long n, int stages) {
    scoped_actor self{sys};
    auto src = sys.spawn(credit_source, n);
    actor next = sys.spawn(acking_sink, n, src, actor{self});
    std::vector<actor> chain;
    for (int i = 0; i < stages; ++i) {
        next = sys.spawn(forwarder, next);
        chain.push_back(next);
    }
    auto t0 = clk::now();
    self->send(src, next);
    long got = -1;
    long long sum = 0;
    self->receive(
        [&](long g, long long s) {
            got = g;
            sum = s;
        },
        after(max_wait) >> [&] { got = -1; });
    double dt = secs_since(t0);
    bool ok = got == n && sum == static_cast<long long>(n) * (n - 1) / 2;
    std::printf("caf.pipeline%d value=%.0f unit=hops/s n=%ld stages=%d secs=%.4f msgs_per_sec=%.0f ok=%d\n", stages,
                double(n) * (stages + 1) / dt, n, stages, dt, n / dt, ok ? 1 : 0);
    for (auto& a : chain) anon_send_exit(a, exit_reason::user_shutdown);
    anon_send_exit(src, exit_reason::user_shutdown);
    return ok ? 0 : 1;
}

// ---- component_bytes and spawn: the reference spawn -------------------------------------

behavior idle_actor(event_based_actor*) {
    return {[](int) {}};
}

behavior one_shot(event_based_actor* self) {
    return {[=](int) { self->quit(); }};
}

int component_bytes(actor_system& sys, long k) {
    std::vector<actor> v;
    v.reserve(k);
    { // warm-up: one actor through its whole life
        auto a = sys.spawn(one_shot);
        anon_send(a, 1);
    }
    sys.await_all_actors_done();
    long r0 = rss_bytes();
    for (long i = 0; i < k; ++i) v.push_back(sys.spawn(idle_actor));
    long r1 = rss_bytes();
    std::printf("caf.component_bytes value=%.0f unit=B k=%ld rss_delta_mib=%.1f\n", double(r1 - r0) / k, k,
                (r1 - r0) / 1048576.0);
    for (auto& a : v) anon_send_exit(a, exit_reason::user_shutdown);
    v.clear();
    sys.await_all_actors_done();
    return 0;
}

int spawn_bench(actor_system& sys, long k, long batch) {
    std::vector<actor> v;
    v.reserve(batch);
    long done = 0;
    auto t0 = clk::now();
    while (done < k) {
        long b = std::min(batch, k - done);
        for (long i = 0; i < b; ++i) v.push_back(sys.spawn(one_shot));
        for (auto& a : v) anon_send(a, 1);
        v.clear();
        sys.await_all_actors_done();
        done += b;
    }
    double dt = secs_since(t0);
    std::printf("caf.spawn value=%.0f unit=actors/s k=%ld batch=%ld secs=%.4f us_per_actor=%.3f ok=1\n", k / dt, k,
                batch, dt, dt / k * 1e6);
    return 0;
}

// ---- backplane100: one actor fanning out to SUBS actors ----------------------------------
//
// CAF has no flow control between event-based actors, so the publisher sends
// in windows of 128 and waits for an ack from every subscriber before the
// next window (bench_core does the same).

constexpr int bp_window = 128;

using go_atom = atom_constant<atom("go")>;
using ack_atom = atom_constant<atom("ack")>;

behavior bp_subscriber(event_based_actor* self, long n, actor publisher, actor report_to) {
    auto count = std::make_shared<long>(0);
    return {[=](int) {
        ++*count;
        if (*count % bp_window == 0 || *count == n) self->send(publisher, ack_atom::value);
        if (*count == n) {
            self->send(report_to, *count);
            self->quit();
        }
    }};
}

struct bp_state {
    std::vector<actor> subs;
    long sent = 0;
    long acks = 0;
};

behavior bp_publisher(stateful_actor<bp_state>* self, long n) {
    auto publish_window = [=] {
        auto& st = self->state;
        long w = std::min<long>(bp_window, n - st.sent);
        for (long i = 0; i < w; ++i)
            for (auto& s : st.subs) self->send(s, static_cast<int>(st.sent + i));
        st.sent += w;
    };
    return {
        [=](std::vector<actor> subs) {
            self->state.subs = std::move(subs);
            publish_window();
        },
        [=](ack_atom) {
            auto& st = self->state;
            if (++st.acks % static_cast<long>(st.subs.size()) == 0) {
                if (st.sent < n) {
                    publish_window();
                } else {
                    self->quit();
                }
            }
        },
    };
}

int backplane(actor_system& sys, long n, int subs) {
    scoped_actor self{sys};
    auto pub = sys.spawn(bp_publisher, n);
    std::vector<actor> sv;
    for (int i = 0; i < subs; ++i) sv.push_back(sys.spawn(bp_subscriber, n, pub, actor{self}));
    auto t0 = clk::now();
    self->send(pub, sv);
    long total = 0;
    bool timed_out = false;
    for (int i = 0; i < subs && !timed_out; ++i)
        self->receive([&](long c) { total += c; }, after(max_wait) >> [&] { timed_out = true; });
    double dt = secs_since(t0);
    bool ok = total == n * subs;
    std::printf("caf.backplane%d value=%.0f unit=deliveries/s n=%ld subs=%d secs=%.4f delivered=%ld ok=%d\n", subs,
                double(total) / dt, n, subs, dt, total, ok ? 1 : 0);
    anon_send_exit(pub, exit_reason::user_shutdown);
    return ok ? 0 : 1;
}

// ---- pingpong ----------------------------------------------------------------------------

behavior ponger(event_based_actor* self) {
    return {[=](int x) { self->send(actor_cast<actor>(self->current_sender()), x); }};
}

behavior pinger(event_based_actor* self, long n, actor pong, actor report_to) {
    return {[=](int x) {
        if (x + 1 >= n) {
            self->send(report_to, static_cast<long>(x + 1));
            self->quit();
            return;
        }
        self->send(pong, x + 1);
    }};
}

int pingpong(actor_system& sys, long n) {
    scoped_actor self{sys};
    auto pong = sys.spawn(ponger);
    auto ping = sys.spawn(pinger, n, pong, actor{self});
    auto t0 = clk::now();
    self->send(ping, -1); // ping sends 0 to pong: n round trips in all (0 .. n-1)
    long trips = -1;
    self->receive([&](long t) { trips = t; }, after(max_wait) >> [&] { trips = -1; });
    double dt = secs_since(t0);
    bool ok = trips == n;
    std::printf("caf.pingpong value=%.0f unit=round_trips/s n=%ld secs=%.4f ok=%d\n", n / dt, n, dt, ok ? 1 : 0);
    anon_send_exit(pong, exit_reason::user_shutdown);
    return ok ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr,
                     "usage: %s pipeline10 N | pipeline10_t2 N | component_bytes K | spawn K [BATCH] | backplane100 N "
                     "| pingpong N\n",
                     argv[0]);
        return 2;
    }
    std::string mode = argv[1];
    actor_system_config cfg;
    // The _t2 figures: two worker threads (scripts/bench pins both peers to CPUs 0-1).
    const bool two = mode.size() > 3 && mode.compare(mode.size() - 3, 3, "_t2") == 0;
    cfg.set("scheduler.max-threads", static_cast<size_t>(two ? 2 : 1));
    actor_system sys{cfg};
    if (mode == "pipeline10") return pipeline(sys, arg(argc, argv, 2, 10'000'000), 10);
    if (mode == "pipeline10_t2") return pipeline(sys, arg(argc, argv, 2, 2'000'000), 10);
    if (mode == "pipeline10_flood") return pipeline_flood(sys, arg(argc, argv, 2, 1'000'000), 10);
    if (mode == "component_bytes") return component_bytes(sys, arg(argc, argv, 2, 100'000));
    if (mode == "spawn") return spawn_bench(sys, arg(argc, argv, 2, 1'000'000), arg(argc, argv, 3, 1000));
    if (mode == "backplane100") return backplane(sys, arg(argc, argv, 2, 100'000), 100);
    if (mode == "pingpong") return pingpong(sys, arg(argc, argv, 2, 1'000'000));
    std::fprintf(stderr, "unknown figure %s\n", mode.c_str());
    return 2;
}
