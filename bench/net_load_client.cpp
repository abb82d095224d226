// Load client for the net benchmarks (scripts/bench-net): one thread, Asio
// 1.22 coroutines, 127.0.0.1 only, bounded in time. Every mode prints one
// result line, "<mode> value=V unit=U ok=0|1 key=value ...", and exits
// non-zero when the run is not valid.
//
//   net_load_client freeport
//       Prints a TCP port on 127.0.0.1 that was free a moment ago.
//
//   net_load_client rr HOST PORT CONNS SECS [WARMUP=1]
//       Closed-loop line request/response: CONNS connections (opened one
//       after another), one request in flight on each. A request is
//       "w<conn>-<seq>\n"; the reply must be exactly "hello w<conn>-<seq>\n"
//       (or with CR LF). Counts replies inside [WARMUP, WARMUP+SECS].
//       value = replies/s; also p50/p99 latency and, with SERVER_PID set,
//       the server's and this client's CPU use in the window.
//
//   net_load_client rr-ref HOST PORT CONNS SECS [WARMUP=1]
//       The same measure in the shape of the project's reference load client
//       (the Asio load client handed over with the reference peers), which
//       times differently: the request and the expected reply are
//       std::strings built for every request (std::to_string, operator+),
//       replies are read with async_read_until into a dynamic_buffer over a
//       std::string, a wrong reply is counted and the connection goes on,
//       and the reply must be exactly "hello <request>" with LF. Also
//       reports the server's CPU ns a request (schedstat).
//
//   net_load_client hold HOST PORT CONNS IDLE_SECS           (SERVER_PID required)
//       Warms the server up on one connection (1,000 requests), samples its
//       RSS, opens CONNS connections, does one request on each, samples the
//       RSS again: value = (RSS held - RSS before) / CONNS, in bytes. Then
//       holds them idle for IDLE_SECS and reports the server's CPU seconds in
//       that time (idle_cpu_s, from /proc/PID/task/*/schedstat: ns resolution)
//       and how long opening the CONNS connections took (connect_s).
//
//   net_load_client fanout chat|redis HOST PORT SUBS SECS [PAYLOAD=32] [WINDOW=1000] [WARMUP=1]
//       SUBS subscriber connections and one publisher. chat: a Kamaelia chat
//       server, where every line a client sends reaches every client as
//       "<addr:port> says <line>"; redis: SUBSCRIBE bench / PUBLISH bench.
//       PORT2: half the subscribers connect there instead (a second chat
//       daemon bridged to the first through Redis); the publisher stays on PORT.
//       The publisher sends PAYLOAD-byte messages carrying a sequence number
//       and keeps at most WINDOW of them published but not yet received by
//       the slowest subscriber. Before the data, "sync" messages go out until
//       every subscriber has one (so every subscriber is known to be
//       subscribed). Every subscriber checks every message: framing, payload
//       bytes, and the sequence (no gap, no duplicate, no reordering). After
//       the window the publisher stops and the subscribers must receive all
//       that was published (completeness). value = in-order deliveries/s,
//       summed over subscribers, inside [WARMUP, WARMUP+SECS]; ok=0 if any
//       subscriber lost, duplicated, reordered or never received a message.
//
//   net_load_client relay HOST PORTFILE SUBS SECS [WINDOW_BYTES=262144] [WARMUP=1]
//       The source and SUBS readers of a streaming splitter (`kamaelia relay
//       --source tcp://...` or bench/asio_relay_peer.cpp). Listens on HOST:0
//       for the relay's source connection and prints "source PORT"; waits
//       (30 s at most) for PORTFILE to hold "PORT PID" of the relay started
//       with that source, accepts its connection (10 s), connects SUBS
//       readers, sends a preamble of single bytes until every reader has one,
//       then the stream (byte i = i mod 251) as fast as WINDOW_BYTES allows:
//       at most that many bytes written but not yet received by the slowest
//       reader (below what a relay holds for a client before cutting it
//       off). Every read is checked against the reader's position. value =
//       bytes/s received, summed over readers, inside [WARMUP, WARMUP+SECS];
//       ok=0 if a reader saw a wrong byte, was cut off or got nothing.
#include "proc_probes.hpp"

#include <asio/co_spawn.hpp>
#include <asio/connect.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/read_until.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

using asio::awaitable;
using asio::ip::tcp;
using clk = std::chrono::steady_clock;

clk::duration seconds_of(double s) {
    return std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(s));
}
constexpr auto use_aw = asio::use_awaitable;

// ---- process probes ----------------------------------------------------------

// utime + stime of one process, in clock ticks; -1 if unknown
long ticks_of(const std::string& pid) {
    std::ifstream f("/proc/" + pid + "/stat");
    std::string line;
    if (!std::getline(f, line)) return -1;
    std::istringstream is(line.substr(line.rfind(')') + 2)); // fields after "(comm)", from field 3
    std::string tok;
    long ut = 0, st = 0;
    for (int field = 3; is >> tok; ++field) {
        if (field == 14) ut = std::atol(tok.c_str());
        if (field == 15) {
            st = std::atol(tok.c_str());
            break;
        }
    }
    return ut + st;
}

// ... of SERVER_PID (summed over a comma list); -1 if unknown
long server_ticks() { return bench::sum_over_servers<long>(ticks_of); }

using bench::server_rss_kib;

double self_cpu_s() {
    rusage r{};
    getrusage(RUSAGE_SELF, &r);
    return double(r.ru_utime.tv_sec) + r.ru_utime.tv_usec / 1e6 + double(r.ru_stime.tv_sec) + r.ru_stime.tv_usec / 1e6;
}

// Each SERVER_PID's CPU time in ns (schedstat), in SERVER_PID's order; -1
// for one that is unknown.
std::vector<long long> server_cpu_each() {
    std::vector<long long> v;
    for (const auto& p : bench::server_pids()) v.push_back(bench::cpu_ns(p));
    return v;
}

struct cpu_mark {
    long server = -1;
    double self = 0;
    clk::time_point at;
    std::vector<long long> each; // per server pid, ns
    static cpu_mark now() { return {server_ticks(), self_cpu_s(), clk::now(), server_cpu_each()}; }
};

double server_pct(const cpu_mark& a, const cpu_mark& b) {
    double secs = std::chrono::duration<double>(b.at - a.at).count();
    if (a.server < 0 || b.server < 0 || secs <= 0) return -1;
    return 100.0 * double(b.server - a.server) / double(sysconf(_SC_CLK_TCK)) / secs;
}

double self_pct(const cpu_mark& a, const cpu_mark& b) {
    double secs = std::chrono::duration<double>(b.at - a.at).count();
    return secs > 0 ? 100.0 * (b.self - a.self) / secs : -1;
}

// "p1,p2,...": each server pid's share of a CPU between the marks, in
// SERVER_PID's order (-1: unknown), so that a figure with several server
// processes (net.chat_fanout_2nodes: two daemons and Redis) shows which one
// is busy.
std::string server_pcts(const cpu_mark& a, const cpu_mark& b) {
    double secs = std::chrono::duration<double>(b.at - a.at).count();
    std::string out;
    for (std::size_t i = 0; i < a.each.size() && i < b.each.size(); ++i) {
        double pct = a.each[i] < 0 || b.each[i] < 0 || secs <= 0 ? -1 : double(b.each[i] - a.each[i]) / 1e7 / secs;
        char buf[32];
        std::snprintf(buf, sizeof buf, "%s%.1f", out.empty() ? "" : ",", pct);
        out += buf;
    }
    return out.empty() ? "-1" : out;
}

// ---- connecting ----------------------------------------------------------------

// Opens n connections one after another (each with a 10 s timeout); stops
// at the first failure. Returns how many are open.
awaitable<void> connect_n(tcp::endpoint ep, int n, std::vector<std::unique_ptr<tcp::socket>>& out) {
    auto ex = co_await asio::this_coro::executor;
    for (int i = 0; i < n; ++i) {
        auto s = std::make_unique<tcp::socket>(ex);
        asio::steady_timer limit(ex, std::chrono::seconds(10));
        limit.async_wait([&s](const asio::error_code& e) {
            if (!e) s->close();
        });
        asio::error_code ec;
        co_await s->async_connect(ep, asio::redirect_error(use_aw, ec));
        limit.cancel();
        if (ec) {
            std::fprintf(stderr, "connection %d of %d failed: %s\n", i + 1, n, ec.message().c_str());
            co_return;
        }
        s->set_option(tcp::no_delay(true), ec);
        out.push_back(std::move(s));
    }
}

int open_connections(asio::io_context& io, tcp::endpoint ep, int n, std::vector<std::unique_ptr<tcp::socket>>& out) {
    out.reserve(out.size() + n);
    asio::co_spawn(io, connect_n(ep, n, out), asio::detached);
    io.run();
    io.restart();
    return static_cast<int>(out.size());
}

// ---- line request/response ----------------------------------------------------------

struct rr_stats {
    bool measuring = false, stopping = false;
    long long done = 0, errors = 0;
    std::vector<std::uint32_t> lat_us; // every 16th reply in the window
};

// One request/response on `s`: sends "<tag><seq>\n", reads one line, checks
// it is "hello <tag><seq>" ended by LF or CR LF. `in` keeps its state between
// calls (a reply is never followed by more bytes in a closed loop, but a
// reply may come in pieces). Returns false on a socket error; `good` says
// whether the reply was right.
struct line_conn {
    explicit line_conn(tcp::socket& sock) : s(&sock) {}
    tcp::socket* s;
    char req[48];
    std::size_t req_len = 0;
    char in[256];
    std::size_t have = 0;
};

awaitable<bool> exchange(line_conn& c, bool& good) {
    asio::error_code ec;
    co_await asio::async_write(*c.s, asio::buffer(c.req, c.req_len), asio::redirect_error(use_aw, ec));
    if (ec) co_return false;
    const char* nl = nullptr;
    for (;;) {
        nl = static_cast<const char*>(std::memchr(c.in, '\n', c.have));
        if (nl) break;
        if (c.have == sizeof c.in) co_return false; // no line in 256 bytes: broken server
        std::size_t n = co_await c.s->async_read_some(asio::buffer(c.in + c.have, sizeof c.in - c.have),
                                                      asio::redirect_error(use_aw, ec));
        if (ec) co_return false;
        c.have += n;
    }
    std::size_t line = static_cast<std::size_t>(nl - c.in) + 1;
    std::string_view got(c.in, line);
    std::string_view body(c.req, c.req_len - 1); // without the '\n'
    good = got.size() >= 6 + body.size() + 1 && got.substr(0, 6) == "hello " && got.substr(6, body.size()) == body &&
           (got.substr(6 + body.size()) == "\n" || got.substr(6 + body.size()) == "\r\n");
    std::memmove(c.in, c.in + line, c.have - line);
    c.have -= line;
    co_return true;
}

awaitable<void> rr_worker(tcp::socket& s, int id, rr_stats& st) {
    line_conn c(s);
    for (long long seq = 0; !st.stopping; ++seq) {
        c.req_len = static_cast<std::size_t>(std::snprintf(c.req, sizeof c.req, "w%d-%lld\n", id, seq));
        auto t0 = clk::now();
        bool good = false;
        bool alive = co_await exchange(c, good);
        if (!alive) {
            if (!st.stopping) ++st.errors;
            co_return;
        }
        if (!good) {
            ++st.errors;
            co_return;
        }
        if (st.measuring) {
            ++st.done;
            if ((st.done & 15) == 0)
                st.lat_us.push_back(static_cast<std::uint32_t>(
                    std::chrono::duration_cast<std::chrono::microseconds>(clk::now() - t0).count()));
        }
    }
}

// ---- the reference client's shape ----------------------------------------------------------

awaitable<void> rr_ref_worker(tcp::socket& s, int id, rr_stats& st) {
    std::string in, req, want;
    asio::error_code ec;
    for (long long seq = 0; !st.stopping; ++seq) {
        req = "w" + std::to_string(id) + "-" + std::to_string(seq) + "\n";
        auto t0 = clk::now();
        co_await asio::async_write(s, asio::buffer(req), asio::redirect_error(use_aw, ec));
        if (ec) break;
        std::size_t n = co_await asio::async_read_until(s, asio::dynamic_buffer(in, 1 << 16), '\n',
                                                        asio::redirect_error(use_aw, ec));
        if (ec) break;
        want = "hello " + req;
        bool good = n == want.size() && in.compare(0, n, want) == 0;
        in.erase(0, n);
        if (!good) {
            ++st.errors;
            continue;
        }
        if (st.measuring) {
            ++st.done;
            if ((st.done & 15) == 0)
                st.lat_us.push_back(static_cast<std::uint32_t>(
                    std::chrono::duration_cast<std::chrono::microseconds>(clk::now() - t0).count()));
        }
    }
    if (ec && !st.stopping) ++st.errors;
}

int mode_rr(tcp::endpoint ep, int conns, double secs, double warm, bool ref_shape) {
    const char* label = ref_shape ? "rr-ref" : "rr";
    asio::io_context io(1);
    std::vector<std::unique_ptr<tcp::socket>> socks;
    auto t0 = clk::now();
    int n = open_connections(io, ep, conns, socks);
    double connect_s = std::chrono::duration<double>(clk::now() - t0).count();
    if (n < conns) {
        std::printf("%s value=0 unit=req/s ok=0 conns=%d connected=%d\n", label, conns, n);
        return 1;
    }
    rr_stats st;
    for (int i = 0; i < n; ++i)
        asio::co_spawn(io, ref_shape ? rr_ref_worker(*socks[i], i, st) : rr_worker(*socks[i], i, st), asio::detached);
    cpu_mark m0, m1;
    long long ns0 = -1, ns1 = -1;
    asio::steady_timer t_start(io, seconds_of(warm));
    asio::steady_timer t_end(io, seconds_of(warm + secs));
    t_start.async_wait([&](const asio::error_code&) {
        st.measuring = true;
        m0 = cpu_mark::now();
        ns0 = bench::server_cpu_ns();
    });
    t_end.async_wait([&](const asio::error_code&) {
        st.measuring = false;
        m1 = cpu_mark::now();
        ns1 = bench::server_cpu_ns();
        st.stopping = true;
        for (auto& s : socks) {
            asio::error_code ec;
            s->shutdown(tcp::socket::shutdown_both, ec);
            s->close(ec);
        }
    });
    io.run();
    double window = std::chrono::duration<double>(m1.at - m0.at).count();
    std::sort(st.lat_us.begin(), st.lat_us.end());
    auto pct = [&](double p) -> unsigned {
        if (st.lat_us.empty()) return 0;
        return st.lat_us[std::min(st.lat_us.size() - 1, static_cast<std::size_t>(p * double(st.lat_us.size())))];
    };
    bool ok = st.errors == 0 && st.done > 0;
    double ns_req = ns0 >= 0 && ns1 >= 0 && st.done > 0 ? double(ns1 - ns0) / double(st.done) : -1;
    std::printf("%s value=%.0f unit=req/s ok=%d conns=%d window_s=%.3f replies=%lld errors=%lld p50_us=%u p99_us=%u "
                "connect_s=%.3f server_cpu_pct=%.0f server_ns_per_req=%.0f client_cpu_pct=%.0f\n",
                label, st.done / window, ok ? 1 : 0, n, window, st.done, st.errors, pct(0.50), pct(0.99), connect_s,
                server_pct(m0, m1), ns_req, self_pct(m0, m1));
    return ok ? 0 : 1;
}

// ---- idle connections ------------------------------------------------------------------

awaitable<void> ping_once(tcp::socket& s, int id, int& good_count) {
    line_conn c(s);
    c.req_len = static_cast<std::size_t>(std::snprintf(c.req, sizeof c.req, "hold%d\n", id));
    bool good = false;
    bool alive = co_await exchange(c, good);
    if (alive && good) ++good_count;
}

awaitable<void> warm_up(tcp::socket& s, int rounds, int& good_count) {
    line_conn c(s);
    for (int i = 0; i < rounds; ++i) {
        c.req_len = static_cast<std::size_t>(std::snprintf(c.req, sizeof c.req, "warm-%d\n", i));
        bool good = false;
        bool alive = co_await exchange(c, good);
        if (!alive || !good) co_return;
        ++good_count;
    }
}

void sleep_for(double secs) { ::usleep(static_cast<useconds_t>(secs * 1e6)); }

// Ends once every ping is answered or every socket was closed (by the limit).
awaitable<void> await_answers(const int& good, int n, std::vector<std::unique_ptr<tcp::socket>>& socks,
                              asio::steady_timer& limit) {
    asio::steady_timer poll(co_await asio::this_coro::executor);
    asio::error_code ec;
    while (good < n) {
        poll.expires_after(std::chrono::milliseconds(5));
        co_await poll.async_wait(asio::redirect_error(use_aw, ec));
        bool any_open = false;
        for (auto& s : socks) any_open = any_open || s->is_open();
        if (!any_open) break;
    }
    limit.cancel();
}

int mode_hold(tcp::endpoint ep, int conns, double idle_secs) {
    if (!std::getenv("SERVER_PID")) {
        std::fprintf(stderr, "hold: set SERVER_PID to the server's pid\n");
        return 2;
    }
    asio::io_context io(1);
    {
        // Touch the server's code paths once, then let it reap the connection.
        std::vector<std::unique_ptr<tcp::socket>> warm;
        int good = 0;
        if (open_connections(io, ep, 1, warm) == 1) {
            asio::co_spawn(io, warm_up(*warm[0], 1000, good), asio::detached);
            io.run();
            io.restart();
        }
        if (good != 1000) {
            std::printf("hold value=0 unit=B/conn ok=0 warmup_replies=%d\n", good);
            return 1;
        }
        asio::error_code ec;
        warm[0]->shutdown(tcp::socket::shutdown_both, ec);
        warm[0]->close(ec);
    }
    sleep_for(0.3);
    long rss0 = server_rss_kib();
    std::vector<std::unique_ptr<tcp::socket>> socks;
    auto t0 = clk::now();
    int n = open_connections(io, ep, conns, socks);
    double connect_s = std::chrono::duration<double>(clk::now() - t0).count();
    int good = 0;
    for (int i = 0; i < n; ++i) asio::co_spawn(io, ping_once(*socks[i], i, good), asio::detached);
    {
        // bounded: replies must all be in within 30 s
        asio::steady_timer limit(io, std::chrono::seconds(30));
        limit.async_wait([&](const asio::error_code& e) {
            if (e) return;
            for (auto& s : socks) {
                asio::error_code ec;
                s->close(ec);
            }
        });
        asio::co_spawn(io, await_answers(good, n, socks, limit), asio::detached);
        io.run();
        io.restart();
    }
    sleep_for(0.2);
    long rss1 = server_rss_kib();
    cpu_mark c0 = cpu_mark::now();
    long long ns0 = bench::server_cpu_ns();
    sleep_for(idle_secs);
    long long ns1 = bench::server_cpu_ns();
    cpu_mark c1 = cpu_mark::now();
    long rss2 = server_rss_kib();
    // schedstat's nanoseconds where the kernel has them, else clock ticks
    double cpu_s = (ns0 >= 0 && ns1 >= 0)               ? double(ns1 - ns0) / 1e9
                   : (c0.server >= 0 && c1.server >= 0) ? double(c1.server - c0.server) / double(sysconf(_SC_CLK_TCK))
                                                        : -1;
    double idle_wall = std::chrono::duration<double>(c1.at - c0.at).count();
    for (auto& s : socks) {
        asio::error_code ec;
        s->close(ec);
    }
    bool ok = n == conns && good == n && rss0 > 0 && rss1 > 0;
    double per_conn = n > 0 ? double(rss1 - rss0) * 1024.0 / n : 0;
    std::printf("hold value=%.0f unit=B/conn ok=%d conns=%d held=%d answered=%d connect_s=%.3f rss_base_kib=%ld "
                "rss_held_kib=%ld rss_end_kib=%ld idle_s=%.3f idle_cpu_s=%.5f idle_cpu_pct=%.4f\n",
                per_conn, ok ? 1 : 0, conns, n, good, connect_s, rss0, rss1, rss2, idle_wall, cpu_s,
                idle_wall > 0 ? 100.0 * cpu_s / idle_wall : -1);
    return ok ? 0 : 1;
}

// ---- fan-out -----------------------------------------------------------------------------

enum class proto { chat, redis };

struct sub_state {
    std::unique_ptr<tcp::socket> s;
    std::vector<char> buf;
    std::size_t have = 0;
    long long next = 0;      // next sequence number expected
    long long delivered = 0; // data messages received in order
    long long gaps = 0;      // messages skipped over
    long long bad = 0;       // malformed, duplicated or reordered
    long long syncs = 0;
    bool started = false; // a data message was seen
    bool broken = false;  // framing lost: stop parsing
    std::string prefix;   // chat: "<addr:port> says ", learned from the first sync line
};

struct fanout_state {
    proto kind;
    std::size_t payload = 32;
    std::vector<sub_state> subs;
    long long published = 0; // data messages
    long long syncs_sent = 0;
    long long pub_lines = 0, pub_bad = 0; // chat: echo lines to the publisher; redis: replies
    bool data_phase = false, stop_publishing = false, stopping = false, pub_waiting = false;
    bool pub_done = false; // the publisher has left its loop: `published` is final
    std::unique_ptr<asio::steady_timer> wake;
    std::string redis_reply; // ":<subs>\r\n"

    long long min_next() const {
        long long m = subs.empty() ? 0 : subs[0].next;
        for (auto& x : subs) m = std::min(m, x.next);
        return m;
    }
    long long total_delivered() const {
        long long t = 0;
        for (auto& x : subs) t += x.delivered;
        return t;
    }
    void poke() {
        if (pub_waiting) {
            pub_waiting = false;
            wake->cancel();
        }
    }
};

// payload for sequence number `seq`: 16 decimal digits, then 'x' padding
void make_payload(char* out, std::size_t len, long long seq) {
    char digits[24];
    std::snprintf(digits, sizeof digits, "%016lld", seq);
    std::memcpy(out, digits, 16);
    std::memset(out + 16, 'x', len - 16);
}

void on_payload(fanout_state& st, sub_state& sub, const char* p, std::size_t len) {
    if (len == 4 && std::memcmp(p, "sync", 4) == 0) {
        if (sub.started) ++sub.bad; // a sync after data: reordered
        ++sub.syncs;
        return;
    }
    if (len != st.payload) {
        ++sub.bad;
        return;
    }
    long long seq = 0;
    for (int i = 0; i < 16; ++i) {
        unsigned d = static_cast<unsigned char>(p[i]) - '0';
        if (d > 9) {
            ++sub.bad;
            return;
        }
        seq = seq * 10 + d;
    }
    for (std::size_t i = 16; i < len; ++i)
        if (p[i] != 'x') {
            ++sub.bad;
            return;
        }
    sub.started = true;
    if (seq == sub.next) {
        ++sub.delivered;
        ++sub.next;
    } else if (seq > sub.next) {
        sub.gaps += seq - sub.next;
        ++sub.delivered;
        sub.next = seq + 1;
    } else {
        ++sub.bad; // duplicate or out of order
    }
}

// Consumes the complete messages in sub.buf; returns bytes consumed.
std::size_t parse_chat(fanout_state& st, sub_state& sub) {
    const char* b = sub.buf.data();
    std::size_t pos = 0;
    for (;;) {
        const char* nl = static_cast<const char*>(std::memchr(b + pos, '\n', sub.have - pos));
        if (!nl) break;
        std::size_t end = static_cast<std::size_t>(nl - b);
        std::size_t len = end - pos;
        if (len > 0 && b[end - 1] == '\r') --len;
        std::string_view line(b + pos, len);
        pos = end + 1;
        if (sub.prefix.empty()) {
            if (line.size() >= 4 && line.substr(line.size() - 4) == "sync") {
                sub.prefix.assign(line.substr(0, line.size() - 4));
                on_payload(st, sub, line.data() + sub.prefix.size(), 4);
            } else {
                ++sub.bad; // data before any sync
            }
            continue;
        }
        if (line.size() < sub.prefix.size() || line.compare(0, sub.prefix.size(), sub.prefix) != 0) {
            ++sub.bad;
            continue;
        }
        on_payload(st, sub, line.data() + sub.prefix.size(), line.size() - sub.prefix.size());
    }
    return pos;
}

constexpr std::string_view redis_head = "*3\r\n$7\r\nmessage\r\n$5\r\nbench\r\n$";

std::size_t parse_redis(fanout_state& st, sub_state& sub) {
    const char* b = sub.buf.data();
    std::size_t pos = 0;
    while (sub.have - pos > redis_head.size()) {
        if (std::memcmp(b + pos, redis_head.data(), redis_head.size()) != 0) {
            ++sub.bad;
            sub.broken = true; // cannot find the next frame
            return sub.have;
        }
        std::size_t p = pos + redis_head.size();
        std::size_t len = 0;
        while (p < sub.have && b[p] >= '0' && b[p] <= '9') len = len * 10 + static_cast<std::size_t>(b[p++] - '0');
        if (p + 2 > sub.have) break;
        if (b[p] != '\r' || b[p + 1] != '\n') {
            ++sub.bad;
            sub.broken = true;
            return sub.have;
        }
        p += 2;
        if (p + len + 2 > sub.have) break;
        if (b[p + len] != '\r' || b[p + len + 1] != '\n') {
            ++sub.bad;
            sub.broken = true;
            return sub.have;
        }
        on_payload(st, sub, b + p, len);
        pos = p + len + 2;
    }
    return pos;
}

awaitable<void> sub_reader(fanout_state& st, std::size_t idx) {
    sub_state& sub = st.subs[idx];
    sub.buf.resize(64 * 1024);
    asio::error_code ec;
    while (!st.stopping) {
        std::size_t n = co_await sub.s->async_read_some(
            asio::buffer(sub.buf.data() + sub.have, sub.buf.size() - sub.have), asio::redirect_error(use_aw, ec));
        if (ec) break;
        sub.have += n;
        if (!sub.broken) {
            std::size_t used = st.kind == proto::chat ? parse_chat(st, sub) : parse_redis(st, sub);
            std::memmove(sub.buf.data(), sub.buf.data() + used, sub.have - used);
            sub.have -= used;
            if (sub.have == sub.buf.size()) { // a message longer than the buffer
                ++sub.bad;
                sub.broken = true;
            }
        } else {
            sub.have = 0;
        }
        st.poke();
    }
}

// The publisher's own input: chat echoes every line to it too; redis
// answers every PUBLISH with ":<subscribers>". Counted (and checked for redis).
awaitable<void> pub_reader(fanout_state& st, tcp::socket& p) {
    std::vector<char> buf(64 * 1024);
    std::string carry;
    asio::error_code ec;
    while (!st.stopping) {
        std::size_t n = co_await p.async_read_some(asio::buffer(buf), asio::redirect_error(use_aw, ec));
        if (ec) break;
        if (st.kind == proto::chat) {
            st.pub_lines += std::count(buf.data(), buf.data() + n, '\n');
            continue;
        }
        carry.append(buf.data(), n);
        std::size_t off = 0;
        for (;;) {
            std::size_t nl = carry.find('\n', off);
            if (nl == std::string::npos) break;
            if (carry.compare(off, nl + 1 - off, st.redis_reply) != 0) ++st.pub_bad;
            ++st.pub_lines;
            off = nl + 1;
        }
        carry.erase(0, off);
    }
}

void append_message(const fanout_state& st, std::string& out, const char* payload, std::size_t len) {
    if (st.kind == proto::redis) {
        out.append("PUBLISH bench ");
        out.append(payload, len);
        out.append("\r\n");
    } else {
        out.append(payload, len);
        out.push_back('\n');
    }
}

awaitable<void> publisher(fanout_state& st, tcp::socket& p, long long window, bool& sync_ok) {
    auto ex = co_await asio::this_coro::executor;
    asio::error_code ec;
    std::string batch;
    // Sync: until every subscriber has seen one, bounded at 10 s.
    asio::steady_timer tick(ex);
    auto sync_deadline = clk::now() + std::chrono::seconds(10);
    for (;;) {
        bool all = std::all_of(st.subs.begin(), st.subs.end(), [](const sub_state& s) { return s.syncs > 0; });
        if (all) break;
        if (clk::now() > sync_deadline) {
            sync_ok = false;
            co_return;
        }
        batch.clear();
        append_message(st, batch, "sync", 4);
        co_await asio::async_write(p, asio::buffer(batch), asio::redirect_error(use_aw, ec));
        if (ec) co_return;
        ++st.syncs_sent;
        tick.expires_after(std::chrono::milliseconds(20));
        co_await tick.async_wait(asio::redirect_error(use_aw, ec));
    }
    sync_ok = true;
    st.data_phase = true;
    std::vector<char> payload(st.payload);
    while (!st.stop_publishing) {
        long long allowed = window - (st.published - st.min_next());
        if (allowed <= 0) {
            st.pub_waiting = true;
            st.wake->expires_at(clk::time_point::max());
            co_await st.wake->async_wait(asio::redirect_error(use_aw, ec));
            continue;
        }
        long long k = std::min<long long>(allowed, 64);
        batch.clear();
        for (long long i = 0; i < k; ++i) {
            make_payload(payload.data(), payload.size(), st.published + i);
            append_message(st, batch, payload.data(), payload.size());
        }
        // Counted before the write: the subscribers may see the batch (and
        // the drain check below may run) before this coroutine resumes.
        // Counting after it let a batch in flight at the end of the window
        // arrive uncounted, so every subscriber that had it looked
        // "incomplete" (next > published) although nothing was lost.
        st.published += k;
        co_await asio::async_write(p, asio::buffer(batch), asio::redirect_error(use_aw, ec));
        if (ec) break;
    }
    st.pub_done = true;
}

// With a second endpoint (two chat daemons bridged through Redis), the
// second half of the subscribers connect to it.
awaitable<void> subscribe_all(fanout_state& st, tcp::endpoint ep, tcp::endpoint ep2, int nsubs, bool& ok) {
    auto ex = co_await asio::this_coro::executor;
    std::vector<std::unique_ptr<tcp::socket>> socks;
    int first = ep2 == ep ? nsubs : nsubs / 2;
    co_await connect_n(ep, first, socks);
    if (first != nsubs) {
        std::vector<std::unique_ptr<tcp::socket>> more;
        co_await connect_n(ep2, nsubs - first, more);
        for (auto& m : more) socks.push_back(std::move(m));
    }
    if (static_cast<int>(socks.size()) != nsubs) {
        ok = false;
        co_return;
    }
    for (auto& s : socks) {
        sub_state sub;
        sub.s = std::move(s);
        if (st.kind == proto::redis) {
            static const std::string want = "*3\r\n$9\r\nsubscribe\r\n$5\r\nbench\r\n:1\r\n";
            asio::error_code ec;
            co_await asio::async_write(*sub.s, asio::buffer(std::string_view("SUBSCRIBE bench\r\n")),
                                       asio::redirect_error(use_aw, ec));
            std::string got(want.size(), '\0');
            asio::steady_timer limit(ex, std::chrono::seconds(10));
            limit.async_wait([&sub](const asio::error_code& e) {
                if (!e) sub.s->close();
            });
            co_await asio::async_read(*sub.s, asio::buffer(got), asio::redirect_error(use_aw, ec));
            limit.cancel();
            if (ec || got != want) {
                ok = false;
                co_return;
            }
        }
        st.subs.push_back(std::move(sub));
    }
    ok = true;
}

struct fanout_timeline {
    long long d0 = 0, d1 = 0, p0 = 0, p1 = 0;
    cpu_mark m0, m1;
    bool drained = false;
};

// The measured part of a run: polls every 5 ms (for `bound` s at most) until
// ready(), then after `warm` s calls at_start() and `secs` s later at_end().
// False (and neither called) if it never got ready.
template <class Ready, class Start, class End>
awaitable<bool> measured_window(asio::steady_timer& t, double bound, Ready ready, double warm, double secs,
                                Start at_start, End at_end) {
    asio::error_code ec;
    auto deadline = clk::now() + seconds_of(bound);
    while (!ready() && clk::now() < deadline) {
        t.expires_after(std::chrono::milliseconds(5));
        co_await t.async_wait(asio::redirect_error(use_aw, ec));
    }
    if (!ready()) co_return false;
    t.expires_after(seconds_of(warm));
    co_await t.async_wait(asio::redirect_error(use_aw, ec));
    at_start();
    t.expires_after(seconds_of(secs));
    co_await t.async_wait(asio::redirect_error(use_aw, ec));
    at_end();
    co_return true;
}

awaitable<void> run_timeline(fanout_state& st, fanout_timeline& tl, tcp::socket& pub, double warm, double secs) {
    asio::steady_timer t(co_await asio::this_coro::executor);
    asio::error_code ec;
    bool measured = co_await measured_window(
        t, 11, [&] { return st.data_phase; }, warm, secs,
        [&] {
            tl.m0 = cpu_mark::now();
            tl.d0 = st.total_delivered();
            tl.p0 = st.published;
        },
        [&] {
            tl.m1 = cpu_mark::now();
            tl.d1 = st.total_delivered();
            tl.p1 = st.published;
        });
    if (measured) {
        st.stop_publishing = true;
        st.poke();
        auto drain_deadline = clk::now() + std::chrono::seconds(5);
        while (clk::now() < drain_deadline) {
            bool all = st.pub_done;
            for (auto& s : st.subs) all = all && s.next >= st.published;
            if (all) {
                tl.drained = true;
                break;
            }
            t.expires_after(std::chrono::milliseconds(2));
            co_await t.async_wait(asio::redirect_error(use_aw, ec));
        }
    }
    st.stopping = true;
    st.poke();
    pub.close(ec);
    for (auto& s : st.subs) s.s->close(ec);
}

int mode_fanout(proto kind, tcp::endpoint ep, tcp::endpoint ep2, int nsubs, double secs, std::size_t payload,
                long long window, double warm) {
    const char* label = kind == proto::chat ? "chat" : "redis";
    if (payload < 16 || payload > 4096) {
        std::fprintf(stderr, "fanout: PAYLOAD must be 16..4096\n");
        return 2;
    }
    fanout_state st;
    st.kind = kind;
    st.payload = payload;
    st.redis_reply = ":" + std::to_string(nsubs) + "\r\n";
    asio::io_context io(1);
    st.wake = std::make_unique<asio::steady_timer>(io);
    st.subs.reserve(nsubs);
    bool ok = false;
    asio::co_spawn(io, subscribe_all(st, ep, ep2, nsubs, ok), [&](std::exception_ptr e) {
        if (e) ok = false;
    });
    io.run();
    io.restart();
    std::vector<std::unique_ptr<tcp::socket>> pubv;
    if (!ok || open_connections(io, ep, 1, pubv) != 1) {
        std::printf("fanout-%s value=0 unit=deliveries/s ok=0 error=setup\n", label);
        return 1;
    }
    // Two chat daemons: a chat client is known by "ADDR:PORT", and Linux
    // may give connections to two different servers the same local port. A
    // subscriber of the second daemon with the publisher's port would take
    // every line as its own and skip it (the run would fail its sync). So
    // the publisher gets a port no subscriber has: a new connection is
    // opened before the clashing one is closed, so it gets another port.
    if (ep2 != ep) {
        auto clashes = [&](const tcp::socket& p) {
            asio::error_code ec;
            auto mine = p.local_endpoint(ec).port();
            return std::any_of(st.subs.begin(), st.subs.end(), [&](const sub_state& sub) {
                asio::error_code e2;
                return sub.s->local_endpoint(e2).port() == mine;
            });
        };
        for (int tries = 0; clashes(*pubv.back()); ++tries) {
            if (tries == 10 || open_connections(io, ep, 1, pubv) != 1) {
                std::printf("fanout-%s value=0 unit=deliveries/s ok=0 error=setup\n", label);
                return 1;
            }
            std::fprintf(stderr, "fanout: the publisher's port was a subscriber's: reconnected\n");
            asio::error_code ec;
            pubv.front()->close(ec);
            pubv.erase(pubv.begin());
        }
    }
    tcp::socket& pub = *pubv[0];

    for (std::size_t i = 0; i < st.subs.size(); ++i) asio::co_spawn(io, sub_reader(st, i), asio::detached);
    asio::co_spawn(io, pub_reader(st, pub), asio::detached);
    bool sync_ok = false;
    asio::co_spawn(io, publisher(st, pub, window, sync_ok), asio::detached);

    // Timeline (from the end of the sync): warm-up, the measured window, then
    // up to 5 s for the subscribers to receive everything published.
    fanout_timeline tl;
    asio::co_spawn(io, run_timeline(st, tl, pub, warm, secs), asio::detached);
    io.run();

    long long gaps = 0, bad = 0, incomplete = 0;
    for (auto& s : st.subs) {
        gaps += s.gaps;
        bad += s.bad;
        if (s.next != st.published || s.delivered + s.gaps != st.published) ++incomplete;
    }
    double w = std::chrono::duration<double>(tl.m1.at - tl.m0.at).count();
    bool good =
        sync_ok && tl.drained && gaps == 0 && bad == 0 && incomplete == 0 && st.pub_bad == 0 && w > 0 && tl.d1 > tl.d0;
    std::printf("fanout-%s value=%.0f unit=deliveries/s ok=%d subs=%d payload=%zu window_msgs=%lld window_s=%.3f "
                "published=%lld published_per_s=%.0f gaps=%lld bad=%lld incomplete_subs=%lld drained=%d syncs=%lld "
                "pub_in=%lld pub_bad=%lld server_cpu_pct=%.0f server_cpu_pcts=%s client_cpu_pct=%.0f\n",
                label, w > 0 ? double(tl.d1 - tl.d0) / w : 0.0, good ? 1 : 0, nsubs, payload, window, w, st.published,
                w > 0 ? double(tl.p1 - tl.p0) / w : 0.0, gaps, bad, incomplete, tl.drained ? 1 : 0, st.syncs_sent,
                st.pub_lines, st.pub_bad, server_pct(tl.m0, tl.m1), server_pcts(tl.m0, tl.m1).c_str(),
                self_pct(tl.m0, tl.m1));
    return good ? 0 : 1;
}

// ---- relay: one source, SUBS readers ----------------------------------------------

// The stream is byte i = i mod 251 (a prime: no chunk size lines up with
// it), so a reader checks the first and last byte of every read against its
// position in O(1): a lost, repeated or reordered piece shows.
constexpr unsigned relay_period = 251;

struct relay_reader {
    std::unique_ptr<tcp::socket> s;
    std::vector<char> buf;
    long long start = -1; // the stream offset of its first byte (known from the preamble)
    long long got = 0;    // bytes received
    long long bad = 0;
    bool closed = false; // by the server, before the end of the run
    long long pos() const { return start < 0 ? -1 : start + got; }
};

struct relay_state {
    std::vector<relay_reader> readers;
    long long sent = 0; // source bytes written
    bool data_phase = false, stopping = false, waiting = false, preamble_ok = false;
    std::unique_ptr<asio::steady_timer> wake;
    long long min_pos() const {
        long long m = -1;
        for (auto& r : readers)
            if (!r.closed && r.start >= 0 && (m < 0 || r.pos() < m)) m = r.pos();
        return m < 0 ? sent : m;
    }
    long long total() const {
        long long t = 0;
        for (auto& r : readers) t += r.got;
        return t;
    }
    void poke() {
        if (waiting) {
            waiting = false;
            wake->cancel();
        }
    }
};

awaitable<void> relay_read(relay_state& st, std::size_t idx) {
    relay_reader& r = st.readers[idx];
    r.buf.resize(64 * 1024);
    asio::error_code ec;
    while (!st.stopping) {
        std::size_t n = co_await r.s->async_read_some(asio::buffer(r.buf), asio::redirect_error(use_aw, ec));
        if (ec) {
            if (!st.stopping) r.closed = true;
            break;
        }
        if (r.start < 0) r.start = static_cast<unsigned char>(r.buf[0]); // preamble: offset < 251
        long long at = r.pos();
        if (static_cast<unsigned char>(r.buf[0]) != at % relay_period ||
            static_cast<unsigned char>(r.buf[n - 1]) != (at + static_cast<long long>(n) - 1) % relay_period)
            ++r.bad;
        r.got += static_cast<long long>(n);
        st.poke();
    }
    st.poke();
}

// The source: a preamble of single bytes (20 ms apart) until every reader has
// one, so every reader's offset is known; then as fast as the window allows:
// at most WINDOW bytes written but not yet received by the slowest reader,
// below what either relay holds for a client before cutting it off.
awaitable<void> relay_source(relay_state& st, tcp::socket& src, long long window) {
    auto ex = co_await asio::this_coro::executor;
    asio::error_code ec;
    std::string pattern(relay_period * 263, '\0'); // any 64 KiB from any phase
    for (std::size_t i = 0; i < pattern.size(); ++i) pattern[i] = static_cast<char>(i % relay_period);
    asio::steady_timer tick(ex);
    while (!std::all_of(st.readers.begin(), st.readers.end(), [](const relay_reader& r) { return r.start >= 0; })) {
        if (st.sent >= relay_period - 1 || st.stopping) co_return; // ~5 s: some reader never got the stream
        co_await asio::async_write(src, asio::buffer(pattern.data() + st.sent, 1), asio::redirect_error(use_aw, ec));
        if (ec) co_return;
        ++st.sent;
        tick.expires_after(std::chrono::milliseconds(20));
        co_await tick.async_wait(asio::redirect_error(use_aw, ec));
    }
    st.preamble_ok = true;
    st.data_phase = true;
    while (!st.stopping) {
        long long allowed = window - (st.sent - st.min_pos());
        if (allowed <= 0) {
            st.waiting = true;
            st.wake->expires_at(clk::time_point::max());
            co_await st.wake->async_wait(asio::redirect_error(use_aw, ec));
            continue;
        }
        std::size_t k = static_cast<std::size_t>(std::min<long long>(allowed, 64 * 1024));
        std::size_t phase = static_cast<std::size_t>(st.sent % relay_period);
        co_await asio::async_write(src, asio::buffer(pattern.data() + phase, k), asio::redirect_error(use_aw, ec));
        if (ec) break;
        st.sent += static_cast<long long>(k);
    }
}

struct relay_timeline {
    long long d0 = 0, d1 = 0, s0 = 0, s1 = 0;
    cpu_mark m0, m1;
};

// From the end of the preamble: warm-up, the measured window, then the end.
awaitable<void> run_relay_timeline(relay_state& st, relay_timeline& tl, tcp::socket& src, double warm, double secs) {
    asio::steady_timer t(co_await asio::this_coro::executor);
    asio::error_code ec;
    co_await measured_window(
        t, 6, [&] { return st.data_phase; }, warm, secs,
        [&] {
            tl.m0 = cpu_mark::now();
            tl.d0 = st.total();
            tl.s0 = st.sent;
        },
        [&] {
            tl.m1 = cpu_mark::now();
            tl.d1 = st.total();
            tl.s1 = st.sent;
        });
    st.stopping = true;
    st.poke();
    src.close(ec);
    for (auto& r : st.readers) r.s->close(ec);
}

// Waits (bounded) for PORTFILE to hold "PORT PID": the relay under test,
// started by the script once this program's source port is known.
bool wait_port_file(const std::string& path, unsigned short& port, double secs) {
    auto deadline = clk::now() + seconds_of(secs);
    while (clk::now() < deadline) {
        std::ifstream f(path);
        long p = 0;
        std::string pid;
        if (f >> p >> pid && p > 0 && p < 65536) {
            port = static_cast<unsigned short>(p);
            setenv("SERVER_PID", pid.c_str(), 1);
            return true;
        }
        usleep(20000);
    }
    return false;
}

int mode_relay(const std::string& host, const std::string& port_file, int nsubs, double secs, long long window,
               double warm) {
    asio::io_context io(1);
    auto addr = asio::ip::make_address(host);
    tcp::acceptor acc(io, tcp::endpoint(addr, 0));
    std::printf("source %u\n", static_cast<unsigned>(acc.local_endpoint().port()));
    std::fflush(stdout);
    auto fail = [](const char* why) {
        std::printf("relay value=0 unit=B/s ok=0 error=%s\n", why);
        return 1;
    };
    unsigned short port = 0;
    if (!wait_port_file(port_file, port, 30)) return fail("no-server");
    // The relay connects to its source when it starts (before it listens).
    tcp::socket src(io);
    asio::steady_timer limit(io, std::chrono::seconds(10));
    limit.async_wait([&](const asio::error_code& e) {
        if (!e) acc.close();
    });
    asio::error_code ec = asio::error::timed_out;
    acc.async_accept(src, [&](const asio::error_code& e) {
        limit.cancel();
        ec = e;
    });
    io.run();
    io.restart();
    if (ec) return fail("no-source-connection");
    src.set_option(tcp::no_delay(true), ec);
    relay_state st;
    st.wake = std::make_unique<asio::steady_timer>(io);
    std::vector<std::unique_ptr<tcp::socket>> socks;
    if (open_connections(io, tcp::endpoint(addr, port), nsubs, socks) != nsubs) return fail("connect");
    st.readers.resize(socks.size());
    for (std::size_t i = 0; i < socks.size(); ++i) {
        st.readers[i].s = std::move(socks[i]);
        asio::co_spawn(io, relay_read(st, i), asio::detached);
    }
    asio::co_spawn(io, relay_source(st, src, window), asio::detached);
    relay_timeline tl;
    asio::co_spawn(io, run_relay_timeline(st, tl, src, warm, secs), asio::detached);
    io.run();
    long long bad = 0, closed = 0, min_got = -1, max_got = 0;
    for (auto& r : st.readers) {
        bad += r.bad;
        closed += r.closed ? 1 : 0;
        min_got = min_got < 0 ? r.got : std::min(min_got, r.got);
        max_got = std::max(max_got, r.got);
    }
    double w = std::chrono::duration<double>(tl.m1.at - tl.m0.at).count();
    bool good = st.preamble_ok && bad == 0 && closed == 0 && w > 0 && tl.d1 > tl.d0 && min_got > 0;
    std::printf("relay value=%.0f unit=B/s ok=%d subs=%d window_bytes=%lld window_s=%.3f source_bytes_per_s=%.0f "
                "bad=%lld cut=%lld min_sub_bytes=%lld max_sub_bytes=%lld preamble=%d server_cpu_pct=%.0f "
                "client_cpu_pct=%.0f\n",
                w > 0 ? double(tl.d1 - tl.d0) / w : 0.0, good ? 1 : 0, nsubs, window, w,
                w > 0 ? double(tl.s1 - tl.s0) / w : 0.0, bad, closed, min_got, max_got, st.preamble_ok ? 1 : 0,
                server_pct(tl.m0, tl.m1), self_pct(tl.m0, tl.m1));
    return good ? 0 : 1;
}

int mode_freeport() {
    asio::io_context io;
    tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    std::printf("%u\n", static_cast<unsigned>(a.local_endpoint().port()));
    return 0;
}

int usage(const char* argv0) {
    std::fprintf(stderr,
                 "usage: %s freeport\n"
                 "       %s rr|rr-ref HOST PORT CONNS SECS [WARMUP=1]\n"
                 "       %s hold HOST PORT CONNS IDLE_SECS          (SERVER_PID=pid)\n"
                 "       %s fanout chat|redis HOST PORT SUBS SECS [PAYLOAD=32] [WINDOW=1000] [WARMUP=1] [PORT2]\n"
                 "       %s relay HOST PORTFILE SUBS SECS [WINDOW_BYTES=262144] [WARMUP=1]\n",
                 argv0, argv0, argv0, argv0, argv0);
    return 2;
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 2) return usage(argv[0]);
    std::string mode = argv[1];
    try {
        if (mode == "freeport") return mode_freeport();
        auto endpoint = [&](int i) {
            return tcp::endpoint(asio::ip::make_address(argv[i]), static_cast<unsigned short>(std::atoi(argv[i + 1])));
        };
        if ((mode == "rr" || mode == "rr-ref") && argc >= 6)
            return mode_rr(endpoint(2), std::atoi(argv[4]), std::atof(argv[5]), argc > 6 ? std::atof(argv[6]) : 1.0,
                           mode == "rr-ref");
        if (mode == "hold" && argc >= 6) return mode_hold(endpoint(2), std::atoi(argv[4]), std::atof(argv[5]));
        if (mode == "relay" && argc >= 6)
            return mode_relay(argv[2], argv[3], std::atoi(argv[4]), std::atof(argv[5]),
                              argc > 6 ? std::atoll(argv[6]) : 256 * 1024, argc > 7 ? std::atof(argv[7]) : 1.0);
        if (mode == "fanout" && argc >= 7) {
            std::string p = argv[2];
            if (p != "chat" && p != "redis") return usage(argv[0]);
            tcp::endpoint ep = endpoint(3);
            tcp::endpoint ep2 =
                argc > 10 ? tcp::endpoint(ep.address(), static_cast<unsigned short>(std::atoi(argv[10]))) : ep;
            return mode_fanout(p == "chat" ? proto::chat : proto::redis, ep, ep2, std::atoi(argv[5]),
                               std::atof(argv[6]), argc > 7 ? static_cast<std::size_t>(std::atol(argv[7])) : 32,
                               argc > 8 ? std::atoll(argv[8]) : 1000, argc > 9 ? std::atof(argv[9]) : 1.0);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "net_load_client: %s\n", e.what());
        std::printf("%s value=0 unit=? ok=0 error=exception\n", mode.c_str());
        return 1;
    }
    return usage(argv[0]);
}
