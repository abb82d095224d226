// tcp_client against real loopback sockets: echo, refused, timed out.
#include "fixture.hpp"
#include "tls_support.hpp"

#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/net/server_core.hpp>
#include <kamaelia/net/tcp_client.hpp>

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

using namespace kamaelia;

namespace {

struct echo : component {
    task main() override {
        while (!shutdown_requested()) {
            while (auto s = recv<std::string>()) co_await send(*s);
            co_await wait_any();
        }
        send_forced(message(producer_finished()), "signal");
    }
};

// Owns a tcp_client, writes `hello`, collects what comes back and the end message.
struct driver : component {
    std::string host;
    std::uint16_t port;
    duration timeout;
    std::string got;
    std::vector<ipc> ends;
    bool was_connected = false;
    server_core* server = nullptr;
    std::shared_ptr<tls_context> tls; // set: the connection is TLS, verifying "localhost"
    driver(std::string h, std::uint16_t p, duration t) : host(std::move(h)), port(p), timeout(t) {}
    task main() override {
        auto& c = add_child(std::make_unique<tcp_client>(host, port, timeout));
        if (tls) c.tls_with(tls, "localhost");
        link({*this, "outbox"}, {c, "inbox"});
        link({*this, "signal"}, {c, "control"});
        link({c, "outbox"}, {*this, "inbox"});
        link({c, "signal"}, {*this, "control"});
        c.activate(*sched());
        co_await send(std::string("hello\r\n")); // queued until connected
        while (ends.empty() && got.size() < 7) {
            while (auto s = recv<std::string>()) got += *s;
            while (auto m = recv<ipc>("control")) ends.push_back(*m);
            if (ends.empty() && got.size() < 7) co_await wait_any();
        }
        was_connected = c.connected();
        if (ends.empty()) {
            send_forced(message(producer_finished("done")), "signal");
            while (ends.empty()) {
                while (auto m = recv<ipc>("control")) ends.push_back(*m);
                if (ends.empty()) co_await wait_any();
            }
        }
        if (server) server->stop_serving();
    }
};

// Stops a real scheduler if a test hangs (liveness only).
struct watchdog {
    scheduler& s;
    std::atomic<bool> done{false};
    std::thread t;
    explicit watchdog(scheduler& sc)
        : s(sc),
          t([this] {
              for (int i = 0; i < 600 && !done; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
              if (!done) s.stop();
          }) {}
    ~watchdog() {
        done = true;
        t.join();
    }
};

std::uint16_t closed_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t n = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &n);
    ::close(fd); // nobody listens there now
    return ntohs(a.sin_port);
}

} // namespace

TEST_CASE("tcp_client: connects, writes what was queued, reads the echo", "[net]") {
    scheduler s;
    watchdog w(s);
    server_core srv;
    srv.bind_address = "127.0.0.1";
    srv.port = 0;
    srv.protocol = [](const connection_info&) { return echo(); };
    srv.activate(s);
    srv.listen();
    driver d("127.0.0.1", srv.bound_port(), std::chrono::seconds(30));
    d.server = &srv;
    d.activate(s);
    s.run();
    CHECK(d.got == "hello\r\n");
    CHECK(d.was_connected);
    REQUIRE_FALSE(d.ends.empty());
    CHECK(d.ends.front().kind == ipc_kind::socket_shutdown);
}

TEST_CASE("tcp_client: a refused connection ends with a clear socket_shutdown", "[net]") {
    scheduler s;
    watchdog w(s);
    driver d("127.0.0.1", closed_port(), std::chrono::seconds(30));
    d.activate(s);
    s.run();
    REQUIRE(d.ends.size() == 1);
    CHECK(d.ends[0].kind == ipc_kind::socket_shutdown);
    CHECK(d.ends[0].text.find("refused") != std::string::npos);
    CHECK(d.ends[0].text.find("127.0.0.1:") != std::string::npos);
    CHECK_FALSE(d.was_connected);
}

TEST_CASE("tcp_client: an unresolvable host ends with a clear socket_shutdown", "[net]") {
    scheduler s;
    watchdog w(s);
    driver d("no-such-host.invalid", 25, std::chrono::seconds(30));
    d.activate(s);
    s.run();
    REQUIRE(d.ends.size() == 1);
    CHECK(d.ends[0].text.find("no-such-host.invalid") != std::string::npos);
}

TEST_CASE("tcp_client: a connect that never completes times out (manual clock)", "[net]") {
    // A listener with a full accept queue drops SYNs: the connect hangs for
    // as long as the test likes; only the manual clock ends it.
    int l = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(l, 0) == 0);
    socklen_t n = sizeof a;
    ::getsockname(l, reinterpret_cast<sockaddr*>(&a), &n);
    std::vector<int> fill;
    for (int i = 0; i < 3; ++i) {
        int c = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        ::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a);
        fill.push_back(c);
    }
    {
        test::fixture f;
        auto& d = f.spawn<driver>("127.0.0.1", ntohs(a.sin_port), std::chrono::seconds(30));
        f.settle();
        CHECK(d.ends.empty()); // still connecting
        f.advance(std::chrono::seconds(31));
        for (int i = 0; i < 1000 && d.ends.empty(); ++i) f.settle(); // the aborted connect's handler
        REQUIRE(d.ends.size() == 1);
        CHECK(d.ends[0].text.find("timed out") != std::string::npos);

        // A stop while connecting ends it at once, with its own reason.
        auto& e = f.spawn<driver>("127.0.0.1", ntohs(a.sin_port), std::chrono::seconds(30));
        f.settle();
        CHECK(e.ends.empty());
        e.send_forced(message(shutdown_microprocess("test stops it")), "signal");
        for (int i = 0; i < 1000 && e.ends.empty(); ++i) f.settle();
        REQUIRE(e.ends.size() == 1);
        CHECK(e.ends[0].text.find("stopped while connecting") != std::string::npos);
    }
    for (int c : fill) ::close(c);
    ::close(l);
}

// A TLS echo server_core on a free loopback port, and a driver with a client context.
struct tls_run {
    scheduler s;
    watchdog w{s};
    server_core srv;
    driver d;
    explicit tls_run(std::shared_ptr<tls_context> client) : d("127.0.0.1", 0, std::chrono::seconds(30)) {
        const auto& cert = test::test_certificate();
        srv.bind_address = "127.0.0.1";
        srv.port = 0;
        srv.tls = make_server_tls(cert.cert, cert.key);
        srv.protocol = [](const connection_info&) { return echo(); };
        srv.activate(s);
        srv.listen();
        d.port = srv.bound_port();
        d.server = &srv;
        d.tls = std::move(client);
        d.activate(s);
        s.run();
    }
};

TEST_CASE("tcp_client: TLS to a TLS server, the name verified against its CA", "[net][tls]") {
    // The self-signed certificate is its own CA.
    tls_run r(make_client_tls(true, test::test_certificate().cert));
    CHECK(r.d.got == "hello\r\n");
    CHECK(r.d.was_connected);
}

TEST_CASE("tcp_client: TLS refuses a server its CAs do not vouch for", "[net][tls]") {
    tls_run r(make_client_tls(true)); // the system's CAs
    CHECK(r.d.got.empty());
    REQUIRE_FALSE(r.d.ends.empty());
    CHECK(r.d.ends.front().kind == ipc_kind::socket_shutdown);
    CHECK(r.d.ends.front().text.find("TLS handshake failed") == 0);
}
