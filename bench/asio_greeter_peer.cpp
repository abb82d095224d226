// The peer for the net benchmarks: an idiomatic one-thread Asio line server.
//
// The shape a careful Asio programmer writes by hand: C++20 coroutines, one
// io_context on one thread, a coroutine per connection that reads up to the
// next '\n' into a growable string and writes "hello <line>" back. Nagle is
// off, as on our side (server_core sets TCP_NODELAY). Nothing else: no
// logging, no limits, no inactivity timer, which is what makes it a tough
// yardstick for a daemon that does all of those.
//
//   asio_greeter_peer PORT [MAX_SECS]
//
// Binds 127.0.0.1 only (PORT 0 picks a free port), prints "listening PORT"
// once it accepts, and exits on SIGINT/SIGTERM or after MAX_SECS (default
// 600), so a benchmark that loses track of it still gets it back.
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read_until.hpp>
#include <asio/redirect_error.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

using asio::ip::tcp;

asio::awaitable<void> greet(tcp::socket sock) {
    asio::error_code ec;
    sock.set_option(tcp::no_delay(true), ec);
    std::string pending; // received, not yet answered
    std::string reply;
    for (;;) {
        std::size_t len = co_await asio::async_read_until(sock, asio::dynamic_buffer(pending, 64 * 1024), '\n',
                                                          asio::redirect_error(asio::use_awaitable, ec));
        if (ec) co_return; // eof, reset, or a line longer than 64 KiB
        reply = "hello ";
        reply.append(pending, 0, len);
        pending.erase(0, len);
        co_await asio::async_write(sock, asio::buffer(reply), asio::redirect_error(asio::use_awaitable, ec));
        if (ec) co_return;
    }
}

asio::awaitable<void> accept_loop(tcp::acceptor& acceptor) {
    for (;;) {
        asio::error_code ec;
        tcp::socket s = co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
        if (ec == asio::error::operation_aborted) co_return;
        if (ec) continue; // EMFILE and the like: the open connections keep being served
        asio::co_spawn(acceptor.get_executor(), greet(std::move(s)), asio::detached);
    }
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s PORT [MAX_SECS]\n", argv[0]);
        return 2;
    }
    auto port = static_cast<unsigned short>(std::atoi(argv[1]));
    int max_secs = argc > 2 ? std::atoi(argv[2]) : 600;

    asio::io_context io(1);
    tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port);
    tcp::acceptor acceptor(io);
    acceptor.open(ep.protocol());
    acceptor.set_option(tcp::acceptor::reuse_address(true));
    acceptor.bind(ep);
    acceptor.listen(4096);

    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](const asio::error_code&, int) { io.stop(); });
    asio::steady_timer deadline(io, std::chrono::seconds(max_secs));
    deadline.async_wait([&](const asio::error_code& ec) {
        if (!ec) io.stop();
    });
    asio::co_spawn(io, accept_loop(acceptor), asio::detached);

    std::printf("listening %u\n", static_cast<unsigned>(acceptor.local_endpoint().port()));
    std::fflush(stdout);
    io.run();
    return 0;
}
