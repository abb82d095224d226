// Load client for the bulletin-board benchmark (scripts/bench-bbs): one
// thread, Asio 1.22 coroutines, 127.0.0.1 only, bounded in time. Every mode
// prints one result line, "<mode> value=V unit=U ok=0|1 key=value ...".
//
//   bbs_load_client sessions HOST PORT CONNS SECS NUSERS [WARMUP=1]
//       CONNS clients, each running complete sessions back to back: connect,
//       log in as user<i % NUSERS> (password "pw"), post a message, browse
//       and read one, quit and wait for the close. Every answer is checked
//       (Login Successful, "Message N posted", a message shown, Goodbye!).
//       value = sessions completed per second inside [WARMUP, WARMUP+SECS];
//       p50_ms/p99_ms: a prompt round trip (a line sent until the next
//       prompt arrives), over the same window.
//
//   bbs_load_client idle HOST PORT CONNS NUSERS          (SERVER_PID required)
//       Samples the server's RSS, logs CONNS sessions in (they stay at
//       `main> `), samples again: value = (RSS after - RSS before) / CONNS,
//       in bytes per idle logged-in session.
#include "proc_probes.hpp"

#include <asio/co_spawn.hpp>
#include <asio/connect.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read_until.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace {

using asio::awaitable;
using asio::ip::tcp;
using clk = std::chrono::steady_clock;
constexpr auto use_aw = asio::use_awaitable;

using bench::server_rss_kib;

struct stats {
    clk::time_point window_start, window_end;
    long sessions = 0; // completed inside the window
    long errors = 0;
    std::string first_error;
    std::vector<double> rtt_ms; // prompt round trips inside the window
    int active = 0;             // workers still running
    asio::steady_timer* guard = nullptr;
    bool in_window(clk::time_point t) const { return t >= window_start && t < window_end; }
    void fail(std::string what) {
        if (errors++ == 0) first_error = std::move(what);
    }
};

// One connection's conversation: lines out, wait for a token.
struct conversation {
    tcp::socket sock;
    std::string buf;
    stats& st;
    conversation(tcp::socket s, stats& x) : sock(std::move(s)), st(x) {}

    // Reads until `token`; returns the text before and including it, or
    // empty (and an error noted) if the connection ended first.
    awaitable<std::string> until(std::string_view token) {
        asio::error_code ec;
        std::size_t n =
            co_await asio::async_read_until(sock, asio::dynamic_buffer(buf), token, asio::redirect_error(use_aw, ec));
        if (ec) {
            st.fail("waiting for '" + std::string(token) + "': " + ec.message());
            co_return std::string();
        }
        std::string out = buf.substr(0, n);
        buf.erase(0, n);
        co_return out;
    }
    // g++ 12 may destroy temporaries inside a co_await expression twice:
    // callers pass named strings only.
    awaitable<bool> send(const std::string& line) {
        std::string wire = line + "\r\n";
        asio::error_code ec;
        co_await asio::async_write(sock, asio::buffer(wire), asio::redirect_error(use_aw, ec));
        co_return !ec;
    }
    // A prompt round trip, timed.
    awaitable<std::string> ask(const std::string& line, std::string_view prompt) {
        auto t0 = clk::now();
        bool ok = co_await send(line);
        if (!ok) co_return std::string();
        std::string out = co_await until(prompt);
        auto t1 = clk::now();
        if (st.in_window(t1)) st.rtt_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
        co_return out;
    }
};

// One line sent, the prompt that answers it, and a text the answer must hold.
struct step {
    std::string line;
    std::string_view prompt;
    std::string_view expect;
};

awaitable<bool> play(conversation& c, const std::vector<step>& steps) {
    for (const step& s : steps) {
        std::string out = co_await c.ask(s.line, s.prompt);
        if (out.empty()) co_return false;
        if (!s.expect.empty() && out.find(s.expect) == std::string::npos) {
            c.st.fail("expected '" + std::string(s.expect) + "', got: " + out);
            co_return false;
        }
    }
    co_return true;
}

std::vector<step> login_steps(int user) {
    return {{"user" + std::to_string(user), "password: ", ""}, {"pw", "main> ", "Login Successful"}};
}

awaitable<bool> log_in(conversation& c, int user) {
    std::string greeting = co_await c.until("login: ");
    if (greeting.empty()) co_return false;
    const std::vector<step> steps = login_steps(user);
    bool ok = co_await play(c, steps);
    co_return ok;
}

// Connects and logs in; null (and an error noted) if either fails.
awaitable<std::unique_ptr<conversation>> connect_and_log_in(tcp::endpoint ep, int user, stats& st) {
    auto ex = co_await asio::this_coro::executor;
    tcp::socket s(ex);
    asio::error_code ec;
    co_await s.async_connect(ep, asio::redirect_error(use_aw, ec));
    if (ec) {
        st.fail("connect: " + ec.message());
        co_return nullptr;
    }
    s.set_option(tcp::no_delay(true));
    auto c = std::make_unique<conversation>(std::move(s), st);
    bool ok = co_await log_in(*c, user);
    if (!ok) co_return nullptr;
    co_return c;
}

awaitable<bool> one_session(tcp::endpoint ep, int worker, int nusers, long seq, stats& st) {
    std::unique_ptr<conversation> cp = co_await connect_and_log_in(ep, worker % nusers, st);
    if (!cp) co_return false;
    conversation& c = *cp;
    const std::vector<step> steps = {
        {"p", "subject: ", ""},
        {"bench " + std::to_string(worker) + "-" + std::to_string(seq), "ends it", ""},
        {"a line of the body\r\n.", "main> ", " posted"},
        {"", "messages> ", ""},
        {"", "messages> ", "message: "},
        {"x", "main> ", ""},
        {"q", "Goodbye!", ""},
    };
    bool ok = co_await play(c, steps);
    if (!ok) co_return false;
    // Wait for the server's close: the session is complete then.
    asio::error_code ec;
    char tmp[256];
    for (;;) {
        std::size_t n = co_await c.sock.async_read_some(asio::buffer(tmp), asio::redirect_error(use_aw, ec));
        if (ec || n == 0) break;
    }
    co_return true;
}

awaitable<void> worker_loop(tcp::endpoint ep, int worker, int nusers, stats& st) {
    long seq = 0;
    while (clk::now() < st.window_end && st.errors == 0) {
        bool ok = co_await one_session(ep, worker, nusers, seq++, st);
        if (ok && st.in_window(clk::now())) ++st.sessions;
        if (!ok) break;
    }
    if (--st.active == 0 && st.guard) st.guard->cancel(); // the last one out: nothing left to wait for
}

double pct(std::vector<double> v, double p) {
    if (v.empty()) return -1;
    std::sort(v.begin(), v.end());
    auto i = static_cast<std::size_t>(p * double(v.size() - 1));
    return v[i];
}

int sessions_mode(tcp::endpoint ep, int conns, double secs, int nusers, double warm) {
    asio::io_context io(1);
    stats st;
    auto start = clk::now();
    st.window_start = start + std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(warm));
    st.window_end = st.window_start + std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(secs));
    // A hard stop well past the window: a stuck server fails the run.
    asio::steady_timer guard(
        io, std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(warm + secs + 60)));
    st.guard = &guard;
    guard.async_wait([&](const asio::error_code& e) {
        if (!e) {
            st.fail("hard deadline");
            io.stop();
        }
    });
    st.active = conns;
    for (int i = 0; i < conns; ++i) asio::co_spawn(io, worker_loop(ep, i, nusers, st), asio::detached);
    io.run(); // until every worker has finished the session it was in when the window closed
    double rate = double(st.sessions) / secs;
    bool ok = st.errors == 0 && st.sessions > 0;
    std::printf("sessions value=%.1f unit=sessions/s ok=%d conns=%d sessions=%ld p50_ms=%.3f p99_ms=%.3f samples=%zu "
                "errors=%ld\n",
                rate, ok ? 1 : 0, conns, st.sessions, pct(st.rtt_ms, 0.50), pct(st.rtt_ms, 0.99), st.rtt_ms.size(),
                st.errors);
    if (!ok) std::fprintf(stderr, "bbs_load_client: %s\n", st.first_error.c_str());
    return ok ? 0 : 1;
}

awaitable<void> idle_one(tcp::endpoint ep, int i, int nusers, stats& st,
                         std::vector<std::unique_ptr<conversation>>& held, int& done) {
    std::unique_ptr<conversation> c = co_await connect_and_log_in(ep, i % nusers, st);
    if (c) held.push_back(std::move(c));
    ++done;
}

int idle_mode(tcp::endpoint ep, int conns, int nusers) {
    if (server_rss_kib() < 0) {
        std::fprintf(stderr, "bbs_load_client idle: SERVER_PID is not set\n");
        return 2;
    }
    asio::io_context io(1);
    stats st;
    st.window_start = clk::now();
    st.window_end = st.window_start + std::chrono::hours(1);
    std::vector<std::unique_ptr<conversation>> held;
    int done = 0;
    // Warm-up: one session through every stage, so first-use allocations
    // (statements, slabs, buffers) are not charged to the idle sessions.
    st.window_end = clk::now() + std::chrono::milliseconds(300);
    st.active = 1;
    asio::co_spawn(io, worker_loop(ep, 0, nusers, st), asio::detached);
    io.run();
    io.restart();
    st.window_end = clk::now() + std::chrono::hours(1);
    long before = server_rss_kib();
    // In batches of 50, so the KDF queue stays short.
    for (int i = 0; i < conns;) {
        int batch = std::min(50, conns - i);
        for (int k = 0; k < batch; ++k, ++i)
            asio::co_spawn(io, idle_one(ep, i, nusers, st, held, done), asio::detached);
        io.run();
        io.restart();
        if (st.errors) break;
    }
    long after = server_rss_kib();
    bool ok = st.errors == 0 && static_cast<int>(held.size()) == conns;
    double per = ok ? double(after - before) * 1024.0 / double(conns) : 0;
    std::printf("idle value=%.0f unit=bytes ok=%d conns=%zu rss_before_kib=%ld rss_after_kib=%ld\n", per, ok ? 1 : 0,
                held.size(), before, after);
    if (!ok) std::fprintf(stderr, "bbs_load_client: %s\n", st.first_error.c_str());
    return ok ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
    auto usage = [] {
        std::fprintf(stderr, "usage: bbs_load_client sessions HOST PORT CONNS SECS NUSERS [WARMUP]\n"
                             "       bbs_load_client idle HOST PORT CONNS NUSERS   (SERVER_PID set)\n");
        return 2;
    };
    if (argc < 2) return usage();
    std::string mode = argv[1];
    if (mode == "sessions" && argc >= 7) {
        tcp::endpoint ep(asio::ip::make_address(argv[2]), static_cast<unsigned short>(std::atoi(argv[3])));
        return sessions_mode(ep, std::atoi(argv[4]), std::atof(argv[5]), std::atoi(argv[6]),
                             argc > 7 ? std::atof(argv[7]) : 1.0);
    }
    if (mode == "idle" && argc >= 6) {
        tcp::endpoint ep(asio::ip::make_address(argv[2]), static_cast<unsigned short>(std::atoi(argv[3])));
        return idle_mode(ep, std::atoi(argv[4]), std::atoi(argv[5]));
    }
    return usage();
}
