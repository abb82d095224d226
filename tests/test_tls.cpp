// TLS on the connected socket adapter over real loopback sockets: TLS from
// the first byte, STARTTLS on a live connection, failures that close with a
// reason, and the context helpers' errors.
#include "fixture.hpp"
#include "net_support.hpp"
#include "tls_support.hpp"

#include <kamaelia/net/connected_socket_adapter.hpp>
#include <kamaelia/net/tls.hpp>

#include <asio/ip/tcp.hpp>
#include <asio/write.hpp>
#include <catch2/catch.hpp>

#include <chrono>
#include <functional>

using namespace kamaelia;
using asio::ip::tcp;
using kamaelia::test::connect_pair;
using kamaelia::test::run_until;

namespace {

// Collects bytes and ends on socket_shutdown, keeping its reason.
struct byte_sink : component {
    std::string bytes;
    std::string shutdown_reason;
    bool peer_closed = false;
    std::size_t tls_marked_at = std::string::npos;
    task main() override {
        for (;;) {
            while (auto m = recv_message()) {
                if (const auto* s = m->peek<std::string>())
                    bytes += *s;
                else if (m->peek<tls_started>())
                    tls_marked_at = bytes.size(); // a server's STARTTLS: clear text before, decrypted after
            }
            while (auto c = recv<ipc>("control")) {
                if (c->kind == ipc_kind::producer_finished) peer_closed = true;
                if (c->kind == ipc_kind::socket_shutdown) {
                    shutdown_reason = c->text;
                    co_return;
                }
            }
            co_await wait_any();
        }
    }
};

// One end: an adapter and a sink for what it reads.
struct end {
    connected_socket_adapter csa;
    byte_sink sink;
    end(tcp::socket s, start_tls tls) : csa(std::move(s), csa_options{}, std::move(tls)) {
        component::link({csa, "outbox"}, {sink, "inbox"});
        component::link({csa, "signal"}, {sink, "control"});
    }
    void write(std::string s) { deliver(csa, "inbox", message(std::move(s))); }
    void finish() { deliver(csa, "control", message(producer_finished("test done"))); }
};

std::shared_ptr<tls_context> server_ctx() {
    const auto& f = test::test_certificate();
    return make_server_tls(f.cert, f.key);
}

} // namespace

TEST_CASE("tls: a TLS connection carries bytes both ways, also a megabyte", "[net][tls]") {
    scheduler s;
    auto [sv, cl] = connect_pair(s);
    end server(std::move(sv), start_tls{server_ctx(), true, {}});
    end client(std::move(cl), start_tls{make_client_tls(false), false, "localhost"});
    server.csa.activate(s);
    server.sink.activate(s);
    client.csa.activate(s);
    client.sink.activate(s);

    client.write("hello over TLS\r\n");
    REQUIRE(run_until(s, [&] { return server.sink.bytes.size() >= 16; }));
    CHECK(server.sink.bytes == "hello over TLS\r\n");
    CHECK(server.csa.tls_established());
    CHECK(client.csa.tls_established());

    std::string big;
    for (int i = 0; i < 1 << 20; ++i) big.push_back(static_cast<char>('a' + i % 26));
    for (int i = 0; i < 64; ++i) server.write(big.substr(static_cast<std::size_t>(i) << 14, 1 << 14));
    REQUIRE(run_until(s, [&] { return client.sink.bytes.size() >= big.size(); }));
    CHECK(client.sink.bytes == big);

    // A graceful close sends close_notify: the other side reads an end of stream.
    server.finish();
    REQUIRE(run_until(s, [&] { return client.sink.peer_closed && !server.sink.shutdown_reason.empty(); }));
    CHECK(server.sink.shutdown_reason == "closed by handler");
    client.finish();
    REQUIRE(run_until(s, [&] { return !client.sink.shutdown_reason.empty(); }));
}

TEST_CASE("tls: STARTTLS upgrades a live connection after the clear-text reply", "[net][tls]") {
    scheduler s;
    auto [sv, cl] = connect_pair(s);
    end server(std::move(sv), start_tls{});
    end client(std::move(cl), start_tls{});
    for (component* c : {static_cast<component*>(&server.csa), static_cast<component*>(&server.sink),
                         static_cast<component*>(&client.csa), static_cast<component*>(&client.sink)})
        c->activate(s);

    client.write("STARTTLS\r\n");
    REQUIRE(run_until(s, [&] { return server.sink.bytes == "STARTTLS\r\n"; }));
    // The reply is queued before the switch: it must leave in clear.
    server.write("220 2.0.0 Ready to start TLS\r\n");
    deliver(server.csa, "inbox", message(start_tls{server_ctx(), true, {}}));
    REQUIRE(run_until(s, [&] { return client.sink.bytes == "220 2.0.0 Ready to start TLS\r\n"; }));
    deliver(client.csa, "inbox", message(start_tls{make_client_tls(false), false, "localhost"}));
    client.write("EHLO secret\r\n");
    REQUIRE(run_until(s, [&] { return server.sink.bytes.size() >= 10 + 13; }));
    CHECK(server.sink.bytes == "STARTTLS\r\nEHLO secret\r\n");
    CHECK(server.sink.tls_marked_at == 10);                // the mark between the clear and the decrypted
    CHECK(client.sink.tls_marked_at == std::string::npos); // a client gets none
    CHECK(server.csa.tls_established());
    CHECK(client.csa.tls_established());
    server.write("250 secure\r\n");
    REQUIRE(run_until(s, [&] { return client.sink.bytes.ends_with("250 secure\r\n"); }));
    server.finish();
    client.finish();
    REQUIRE(run_until(s, [&] { return !server.sink.shutdown_reason.empty() && !client.sink.shutdown_reason.empty(); }));
}

TEST_CASE("tls: a clear-text client on a TLS port is closed with a reason", "[net][tls]") {
    scheduler s;
    auto [sv, cl] = connect_pair(s);
    end server(std::move(sv), start_tls{server_ctx(), true, {}});
    server.csa.activate(s);
    server.sink.activate(s);
    asio::write(cl, asio::buffer(std::string("GET / HTTP/1.0\r\n\r\n")));
    REQUIRE(run_until(s, [&] { return !server.sink.shutdown_reason.empty(); }));
    CHECK(server.sink.shutdown_reason.find("TLS handshake failed") == 0);
    CHECK(server.sink.bytes.empty());
}

TEST_CASE("tls: a client that verifies refuses a self-signed server", "[net][tls]") {
    scheduler s;
    auto [sv, cl] = connect_pair(s);
    end server(std::move(sv), start_tls{server_ctx(), true, {}});
    end client(std::move(cl), start_tls{make_client_tls(true), false, "localhost"});
    for (component* c : {static_cast<component*>(&server.csa), static_cast<component*>(&server.sink),
                         static_cast<component*>(&client.csa), static_cast<component*>(&client.sink)})
        c->activate(s);
    REQUIRE(run_until(s, [&] { return !client.sink.shutdown_reason.empty(); }));
    CHECK(client.sink.shutdown_reason.find("TLS handshake failed") == 0);
    CHECK(client.sink.shutdown_reason.find("certificate") != std::string::npos);
    REQUIRE(run_until(s, [&] { return !server.sink.shutdown_reason.empty(); }));
}

TEST_CASE("tls: contexts name the file they could not use", "[net][tls]") {
    const auto& f = test::test_certificate();
    CHECK_THROWS_WITH(make_server_tls("/nonexistent/cert.pem", f.key), Catch::Contains("/nonexistent/cert.pem"));
    CHECK_THROWS_WITH(make_server_tls(f.cert, "/nonexistent/key.pem"), Catch::Contains("/nonexistent/key.pem"));
    CHECK_THROWS_WITH(make_server_tls(f.key, f.key), Catch::Contains(f.key));
}

TEST_CASE("socket adapter: a shared payload (a backplane's fan-out) is written from the one copy, in clear and in TLS",
          "[net][tls]") {
    scheduler s;
    auto [psv, pcl] = connect_pair(s);
    end plain_server(std::move(psv), start_tls{});
    end plain_client(std::move(pcl), start_tls{});
    auto [tsv, tcl] = connect_pair(s);
    end tls_server(std::move(tsv), start_tls{server_ctx(), true, {}});
    end tls_client(std::move(tcl), start_tls{make_client_tls(false), false, "localhost"});
    for (end* e : {&plain_server, &plain_client, &tls_server, &tls_client}) {
        e->csa.activate(s);
        e->sink.activate(s);
    }
    // Small and large chunks, each held by both servers at once: TLS joins
    // small ones into a record (copying, never changing the shared bytes).
    std::vector<shared<std::string>> chunks;
    std::string expect;
    for (int i = 0; i < 48; ++i) {
        std::size_t n = i % 3 == 0 ? 40000 : 17 + static_cast<std::size_t>(i) * 31;
        chunks.push_back(shared<std::string>::make(std::string(n, static_cast<char>('a' + i % 26))));
        expect += *chunks.back();
    }
    for (auto& c : chunks) {
        deliver(plain_server.csa, "inbox", message(c));
        deliver(tls_server.csa, "inbox", message(c));
    }
    REQUIRE(run_until(s, [&] {
        return plain_client.sink.bytes.size() >= expect.size() && tls_client.sink.bytes.size() >= expect.size();
    }));
    CHECK(plain_client.sink.bytes == expect);
    CHECK(tls_client.sink.bytes == expect);
    // Written, every share was let go; the payloads themselves are untouched.
    for (std::size_t i = 0; i < chunks.size(); ++i) {
        CHECK(chunks[i].use_count() == 1);
        CHECK(*chunks[i] == std::string(chunks[i]->size(), static_cast<char>('a' + i % 26)));
    }
    for (end* e : {&plain_server, &tls_server}) e->finish();
    REQUIRE(run_until(s, [&] { return plain_client.sink.peer_closed && tls_client.sink.peer_closed; }));
    for (end* e : {&plain_client, &tls_client}) e->finish();
    REQUIRE(run_until(s, [&] {
        return !plain_server.sink.shutdown_reason.empty() && !tls_server.sink.shutdown_reason.empty() &&
               !plain_client.sink.shutdown_reason.empty() && !tls_client.sink.shutdown_reason.empty();
    }));
}
