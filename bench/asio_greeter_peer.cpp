// The peer for the net benchmarks: an idiomatic Asio line server.
//
// The shape a careful Asio programmer writes by hand: C++20 coroutines, an
// io_context(1) per thread, a coroutine per connection that reads up to the
// next '\n' into a growable string and writes "hello <line>" back. Nagle is
// off, as on our side (server_core sets TCP_NODELAY). Nothing else: no
// logging, no limits, no inactivity timer, which is what makes it a tough
// yardstick for a daemon that does all of those.
//
//   asio_greeter_peer PORT [MAX_SECS] [THREADS=1] [FIRST_CPU=-1]
//
// THREADS > 1 is the shard-per-core shape (the `_t2` figures and the
// BENCH_THREADS scaling table), as fair as the project's reference
// multi-core Asio greeter: every thread has its own io_context(1) and its
// own acceptor on the same port (SO_REUSEPORT: the kernel spreads the
// connections); thread i is pinned to CPU FIRST_CPU+i when FIRST_CPU >= 0
// (the benchmark pins the whole process with taskset instead). THREADS=1 is
// the one-thread server of the single-core figures.
//
// Binds 127.0.0.1 only (PORT 0 picks a free port; the other acceptors bind
// to the one the first got), prints "listening PORT" (and " threads N" when
// N > 1) once every acceptor listens, and exits on SIGINT/SIGTERM or after
// MAX_SECS (default 600), so a benchmark that loses track of it still gets
// it back.
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

#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

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

asio::awaitable<void> accept_loop(tcp::acceptor acceptor) {
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
        std::fprintf(stderr, "usage: %s PORT [MAX_SECS] [THREADS=1] [FIRST_CPU=-1]\n", argv[0]);
        return 2;
    }
    auto port = static_cast<unsigned short>(std::atoi(argv[1]));
    int max_secs = argc > 2 ? std::atoi(argv[2]) : 600;
    int threads = argc > 3 ? std::max(1, std::atoi(argv[3])) : 1;
    int first_cpu = argc > 4 ? std::atoi(argv[4]) : -1;

    std::vector<std::unique_ptr<asio::io_context>> ios;
    for (int i = 0; i < threads; ++i) {
        ios.push_back(std::make_unique<asio::io_context>(1));
        tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port);
        tcp::acceptor acceptor(*ios.back());
        acceptor.open(ep.protocol());
        acceptor.set_option(tcp::acceptor::reuse_address(true));
        if (threads > 1) {
            int one = 1;
            ::setsockopt(acceptor.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        }
        acceptor.bind(ep);
        acceptor.listen(4096);
        port = acceptor.local_endpoint().port();
        asio::co_spawn(*ios.back(), accept_loop(std::move(acceptor)), asio::detached);
    }
    auto stop_all = [&] {
        for (auto& io : ios) io->stop();
    };
    asio::signal_set signals(*ios[0], SIGINT, SIGTERM);
    signals.async_wait([&](const asio::error_code&, int) { stop_all(); });
    asio::steady_timer deadline(*ios[0], std::chrono::seconds(max_secs));
    deadline.async_wait([&](const asio::error_code& ec) {
        if (!ec) stop_all();
    });

    if (threads > 1)
        std::printf("listening %u threads %d\n", static_cast<unsigned>(port), threads);
    else
        std::printf("listening %u\n", static_cast<unsigned>(port));
    std::fflush(stdout);
    std::vector<std::thread> extra;
    auto run = [&](int i) {
        if (first_cpu >= 0) {
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET(first_cpu + i, &set);
            pthread_setaffinity_np(pthread_self(), sizeof set, &set);
        }
        ios[static_cast<std::size_t>(i)]->run();
    };
    for (int i = 1; i < threads; ++i) extra.emplace_back(run, i);
    run(0); // the main thread is thread 0, as in the one-thread server
    for (auto& t : extra) t.join();
    return 0;
}
