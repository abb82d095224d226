// tcp_server over real loopback sockets: accepted connections arrive as
// ready adapters that the receiver wires itself; a busy port fails loudly;
// shutdown closes the listener.
#include "fixture.hpp"
#include "net_support.hpp"

#include <kamaelia/net/tcp_server.hpp>
#include <kamaelia/util/pure_transformer.hpp>

#include <asio/ip/tcp.hpp>
#include <asio/read_until.hpp>
#include <asio/streambuf.hpp>
#include <asio/write.hpp>
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>

using namespace kamaelia;
using asio::ip::tcp;
using kamaelia::test::run_until;

namespace {

// Wires every new connection to an upper-casing handler, as a parent.
struct wiring : component {
    std::vector<connection_info> seen;
    task main() override {
        while (!shutdown_requested()) {
            while (auto c = recv<new_connection>()) {
                seen.push_back(c->info);
                auto& csa = add_child(std::move(c->csa));
                pure_transformer up([](std::string s) {
                    for (auto& ch : s) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
                    return s;
                });
                auto& h = add_child(std::make_unique<decltype(up)>(std::move(up)));
                link({csa, "outbox"}, {h, "inbox"});
                link({h, "outbox"}, {csa, "inbox"});
                link({csa, "signal"}, {h, "control"});
                link({h, "signal"}, {csa, "control"});
                csa.activate(*sched());
                h.activate(*sched());
            }
            co_await wait_any();
        }
        for (component* c : children()) c->stop();
    }
};

} // namespace

TEST_CASE("tcp_server: connections arrive as adapters the receiver wires", "[net][tcp_server][threads]") {
    scheduler s;
    tcp_server server("127.0.0.1", 0);
    wiring w;
    component::link({server, "protocolHandlerSignal"}, {w, "inbox"});
    server.activate(s);
    w.activate(s);
    server.listen();
    std::uint16_t port = server.bound_port();
    REQUIRE(port != 0);

    // A blocking client on another thread, so the scheduler keeps running here.
    // The scheduler's thread polls `got` (an atomic); it reads `reply` only
    // after join().
    std::string reply;
    std::atomic<bool> got{false};
    std::thread client([&] {
        asio::io_context io;
        tcp::socket c(io);
        c.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
        asio::write(c, asio::buffer(std::string("shout\n")));
        asio::streambuf b;
        asio::read_until(c, b, '\n');
        reply.assign(asio::buffers_begin(b.data()), asio::buffers_end(b.data()));
        got.store(true, std::memory_order_release);
    });
    bool answered = run_until(s, [&] { return got.load(std::memory_order_acquire); });
    client.join();
    REQUIRE(answered);
    REQUIRE(reply == "SHOUT\n");
    REQUIRE(server.accepted_total() == 1);
    REQUIRE(w.seen.size() == 1);
    CHECK(w.seen[0].peer == "127.0.0.1");
    CHECK(w.seen[0].local_port == port);

    // A second listener on the same port fails loudly.
    tcp_server again("127.0.0.1", port);
    again.reuse_address = false;
    CHECK_THROWS_WITH(again.listen(), Catch::Contains("in use") && Catch::Contains(std::to_string(port)));

    // Shutdown closes the listener.
    deliver(server, "control", message(shutdown_microprocess("test over")));
    deliver(w, "control", message(shutdown_microprocess("test over")));
    REQUIRE(run_until(s, [&] { return server.finished(); }));
    asio::io_context io;
    tcp::socket c(io);
    asio::error_code ec;
    c.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), ec);
    CHECK(ec == asio::error::connection_refused);
}
