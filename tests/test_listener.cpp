// The listener and server_core's connection bookkeeping: the timer wheel on
// a manual clock, server_core on a unix socket (echo, inactivity timeout
// driven by the manual clock, the per-connection caps), and the accept
// back-off under descriptor exhaustion, logged as one condition (log_limiter).
#include "fixture.hpp"
#include "net_support.hpp"

#include <kamaelia/net/listener.hpp>
#include <kamaelia/net/server_core.hpp>
#include <kamaelia/net/timer_wheel.hpp>
#include <kamaelia/util/pure_transformer.hpp>

#include <asio/local/stream_protocol.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

using namespace kamaelia;
using namespace std::chrono_literals;
using kamaelia::test::fixture;
using kamaelia::test::run_until;
using unix_socket = asio::local::stream_protocol::socket;

namespace {

time_point at(duration d) { return time_point(d); }

std::vector<int> expire_all(timer_wheel<int>& w, time_point now) {
    std::vector<int> out;
    w.expire(now, [&](int k) { out.push_back(k); });
    std::sort(out.begin(), out.end());
    return out;
}

std::string temp_socket_path(const char* tag) {
    return (std::filesystem::temp_directory_path() /
            ("kamaelia-listener-" + std::to_string(::getpid()) + "-" + tag + ".sock"))
        .string();
}

// Reads n bytes once the scheduler has produced them (a blocking read
// would stop the scheduler that must send them).
std::string read_now(scheduler& s, unix_socket& sock, std::size_t n) {
    REQUIRE(run_until(s, [&] { return sock.available() >= n; }));
    std::string got(n, '\0');
    asio::read(sock, asio::buffer(got));
    return got;
}

// True once the peer has closed (EOF or an error).
bool closed_by_peer(scheduler& s, unix_socket& sock) {
    return run_until(s, [&] {
        asio::error_code ec;
        sock.non_blocking(true, ec);
        char c;
        sock.read_some(asio::buffer(&c, 1), ec);
        return ec && ec != asio::error::would_block && ec != asio::error::try_again;
    });
}

struct echo_server : server_core {
    explicit echo_server(std::string path) {
        server_name = "echo";
        unix_path = std::move(path);
        grace = 1s;
        protocol = [](const connection_info&) { return pure_transformer([](std::string s) { return s; }); };
    }
};

// Captures spdlog's output for the length of a test.
struct log_capture {
    std::ostringstream text;
    std::shared_ptr<spdlog::logger> old = spdlog::default_logger();
    log_capture() {
        auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(text);
        auto l = std::make_shared<spdlog::logger>("capture", sink);
        l->set_level(spdlog::level::info);
        spdlog::set_default_logger(l);
    }
    ~log_capture() { spdlog::set_default_logger(old); }
    std::size_t count(const std::string& what) const {
        std::string s = text.str();
        std::size_t n = 0;
        for (auto p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
        return n;
    }
};

} // namespace

TEST_CASE("timer_wheel: keys fire at their tick, never early, once", "[net][wheel]") {
    timer_wheel<int> w(1s, 8);
    w.schedule(1, at(1500ms)); // rounds up to 2 s
    w.schedule(2, at(3s));
    w.schedule(3, at(20s)); // more than a turn (8 s) ahead
    CHECK(w.size() == 3);
    CHECK(w.next_deadline() == at(2s));
    CHECK(expire_all(w, at(1900ms)).empty());
    CHECK(expire_all(w, at(2s)) == std::vector<int>{1});
    CHECK(expire_all(w, at(2s)).empty()); // once
    CHECK(w.next_deadline() == at(3s));
    CHECK(expire_all(w, at(10s)) == std::vector<int>{2}); // a long gap: 3 is a turn later, not due
    CHECK(w.next_deadline() == at(20s));
    CHECK(expire_all(w, at(19s)).empty());
    CHECK(expire_all(w, at(25s)) == std::vector<int>{3});
    CHECK(w.empty());
    CHECK_FALSE(w.next_deadline());
}

TEST_CASE("timer_wheel: a key rescheduled while expiring lands at its new deadline", "[net][wheel]") {
    timer_wheel<int> w(1s, 4);
    for (int i = 0; i < 1000; ++i) w.schedule(i, at(5s));
    std::size_t fired = 0;
    w.expire(at(5s), [&](int k) {
        ++fired;
        if (k % 2 == 0) w.schedule(k, at(7s));
    });
    CHECK(fired == 1000);
    CHECK(w.size() == 500);
    CHECK(w.next_deadline() == at(7s));
    CHECK(expire_all(w, at(6s)).empty());
    CHECK(expire_all(w, at(7s)).size() == 500);
    // A deadline already past is due at the next expire.
    w.schedule(9, at(1s));
    CHECK(expire_all(w, at(8s)) == std::vector<int>{9});
}

TEST_CASE("server_core on a unix socket: echo, then the inactivity timeout on the manual clock", "[net][listener]") {
    fixture f;
    std::string path = temp_socket_path("echo");
    echo_server srv(path);
    srv.inactivity_timeout = 30s;
    f.activate(srv);
    srv.listen();
    CHECK(srv.address_text() == "unix:" + path);
    CHECK(std::filesystem::is_socket(path));

    asio::io_context& io = f.sched.io();
    unix_socket a(io), b(io);
    a.connect(asio::local::stream_protocol::endpoint(path));
    b.connect(asio::local::stream_protocol::endpoint(path));
    REQUIRE(run_until(f.sched, [&] { return srv.connections() == 2; }));
    asio::write(a, asio::buffer(std::string("ping\n")));
    CHECK(read_now(f.sched, a, 5) == "ping\n");

    // b stays silent, a talks at 20 s: only b goes at 30 s.
    f.advance(20s);
    asio::write(a, asio::buffer(std::string("x")));
    CHECK(read_now(f.sched, a, 1) == "x");
    f.advance(9s);
    CHECK(srv.connections() == 2);
    f.advance(2s);
    REQUIRE(run_until(f.sched, [&] { return srv.connections() == 1; }));
    CHECK(closed_by_peer(f.sched, b));
    // a was active at 20 s: it goes at 50 s, not before.
    f.advance(10s);
    CHECK(srv.connections() == 1);
    f.advance(10s);
    REQUIRE(run_until(f.sched, [&] { return srv.connections() == 0; }));
    CHECK(closed_by_peer(f.sched, a));

    srv.stop_serving();
    REQUIRE(run_until(f.sched, [&] { return srv.finished(); }));
    CHECK_FALSE(std::filesystem::exists(path)); // removed on stop
}

TEST_CASE("server_core on a unix socket: the connection cap applies, and a live socket is 'address in use'",
          "[net][listener]") {
    fixture f;
    std::string path = temp_socket_path("cap");
    echo_server srv(path);
    srv.max_connections = 1;
    f.activate(srv);
    srv.listen();
    asio::io_context& io = f.sched.io();
    unix_socket a(io), b(io);
    a.connect(asio::local::stream_protocol::endpoint(path));
    REQUIRE(run_until(f.sched, [&] { return srv.connections() == 1; }));
    b.connect(asio::local::stream_protocol::endpoint(path));
    REQUIRE(run_until(f.sched, [&] { return srv.refused_total() == 1; }));
    CHECK(closed_by_peer(f.sched, b));
    CHECK(srv.connections() == 1);
    {
        // (Its probe is one more connection, refused like b.)
        echo_server second(path);
        CHECK_THROWS_WITH(second.listen(), Catch::Contains("address in use"));
    }
    srv.stop_serving();
    REQUIRE(run_until(f.sched, [&] { return srv.finished(); }));
}

TEST_CASE("listener: out of descriptors it pauses, logs the start once, and the end",
          "[net][listener][hostile][descriptors]") {
#if defined(KAMAELIA_UBSAN_VPTR)
    // UBSan's vptr check reads a vtable through a pipe it opens for the purpose;
    // with every descriptor taken it cannot, and reports each virtual call as bad.
    // `make test` runs this case in the ThreadSanitizer build instead.
    WARN("skipped: UBSan's vptr check needs free descriptors");
    return;
#endif
    log_capture cap;
    fixture f;
    std::string path = temp_socket_path("emfile");
    listener l(listen_address::unix_socket(path));
    l.name_for_logs = "emfile-test";
    f.activate(l);
    l.listen();
    test::collector sink;
    component::link({l, "protocolHandlerSignal"}, {sink, "inbox"});
    f.activate(sink);

    asio::io_context& io = f.sched.io();
    std::vector<std::unique_ptr<unix_socket>> clients;
    for (int i = 0; i < 3; ++i) {
        clients.push_back(std::make_unique<unix_socket>(io));
        clients.back()->open();
    }
    // Use up every descriptor: the listener's accept gets EMFILE.
    rlimit old{};
    REQUIRE(::getrlimit(RLIMIT_NOFILE, &old) == 0);
    rlimit low = old;
    low.rlim_cur = 256;
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &low) == 0);
    std::vector<int> hogs;
    for (;;) {
        int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0) break; // EMFILE: every number below the limit is taken
        hogs.push_back(fd);
    }
    for (auto& c : clients) c->connect(asio::local::stream_protocol::endpoint(path));
    REQUIRE(run_until(f.sched, [&] { return l.accept_failures() >= 1; }));
    CHECK(l.accept_paused());
    for (int i = 0; i < 20; ++i) f.advance(100ms); // 20 more tries, still out of descriptors
    CHECK(l.accept_failures() >= 10);
    CHECK(cap.count("emfile-test: accept failed, pausing accepts") == 1);

    for (int fd : hogs) ::close(fd);
    ::setrlimit(RLIMIT_NOFILE, &old);
    f.advance(100ms);
    REQUIRE(run_until(f.sched, [&] { return sink.items.size() == 3; }));
    CHECK(cap.count("recovered after") == 1);
    CHECK(cap.count("emfile-test: accept failed") == 2);
    l.stop();
    f.settle();
}

TEST_CASE("server_core: a burst of 2,000 connects waits in the accept queue, then every one is served and reaped",
          "[net][listener][backlog]") {
    // Connects that arrive while the scheduler is busy wait in the kernel's
    // accept queue; with a backlog of 1,024 the 1,026th is refused (unix
    // socket: EAGAIN at once; TCP: a SYN dropped, the client retries after
    // 1 s: net.accept_10k took seconds instead of 0.35 s). Not one connect
    // may be turned away, and all 2,000 must be found and reaped on close.
    constexpr int burst = 2000;
    int somaxconn = 0;
    std::ifstream("/proc/sys/net/core/somaxconn") >> somaxconn;
    rlimit old{};
    REQUIRE(::getrlimit(RLIMIT_NOFILE, &old) == 0);
    if (somaxconn <= burst || old.rlim_max < 2 * burst + 200) {
        WARN("skipped: needs net.core.somaxconn > 2000 and 4,200 descriptors (somaxconn " << somaxconn << ")");
        return;
    }
    rlimit more = old;
    more.rlim_cur = std::max<rlim_t>(old.rlim_cur, 2 * burst + 200);
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &more) == 0);

    fixture f;
    std::string path = temp_socket_path("burst");
    echo_server srv(path);
    f.activate(srv);
    srv.listen(); // listening, and not one accept until the scheduler runs
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    REQUIRE(path.size() < sizeof addr.sun_path);
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    std::vector<int> clients;
    int turned_away = 0;
    for (int i = 0; i < burst; ++i) {
        int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        REQUIRE(fd >= 0);
        if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
            ++turned_away; // EAGAIN: the accept queue is full
            ::close(fd);
            continue;
        }
        clients.push_back(fd);
    }
    CHECK(turned_away == 0);

    REQUIRE(run_until(f.sched, [&] { return srv.connections() == clients.size(); }));
    CHECK(srv.accepted_total() == clients.size());
    // Every second client leaves first: the bookkeeping finds and removes
    // those in the middle of the table, then the rest.
    for (std::size_t i = 0; i < clients.size(); i += 2) ::close(std::exchange(clients[i], -1));
    REQUIRE(run_until(f.sched, [&] { return srv.connections() == clients.size() / 2; }));
    for (int& fd : clients)
        if (fd >= 0) ::close(std::exchange(fd, -1));
    REQUIRE(run_until(f.sched, [&] { return srv.connections() == 0; }));
    srv.stop_serving();
    REQUIRE(run_until(f.sched, [&] { return srv.finished(); }));
    ::setrlimit(RLIMIT_NOFILE, &old);
}
