// `kamaelia health HOST:PORT`: exits 0 if something accepts a TCP connection
// there within the timeout (the Docker HEALTHCHECK).
#include "daemon.hpp"

#include <asio/connect.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>

#include <iostream>

namespace kd = kamaelia::daemon;

namespace {

std::string target;
double timeout_s = 3;

int health() {
    auto hp = kd::split_host_port(target);
    if (!hp) {
        std::cerr << "kamaelia health: expected HOST:PORT, got " << target << "\n";
        return 2;
    }
    const auto& [host, port] = *hp;
    asio::io_context io;
    asio::ip::tcp::resolver res(io);
    asio::ip::tcp::socket sock(io);
    asio::error_code result = asio::error::timed_out;
    asio::steady_timer timer(io, std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                     std::chrono::duration<double>(timeout_s)));
    asio::error_code rec;
    auto eps = res.resolve(host, port, rec);
    if (rec) {
        std::cerr << "kamaelia health: " << target << ": " << rec.message() << "\n";
        return 1;
    }
    asio::async_connect(sock, eps, [&](const asio::error_code& ec, const asio::ip::tcp::endpoint&) {
        result = ec;
        timer.cancel();
    });
    timer.async_wait([&](const asio::error_code& ec) {
        if (!ec) sock.close();
    });
    io.run();
    if (result) {
        std::cerr << "kamaelia health: " << target << ": " << result.message() << "\n";
        return 1;
    }
    return 0;
}

const kd::register_tool reg{{
    .name = "health",
    .help = "exits 0 if a server answers at HOST:PORT",
    .setup =
        [](CLI::App& app) {
            app.add_option("target", target, "HOST:PORT")->required();
            app.add_option("--timeout", timeout_s, "seconds to wait (default 3)");
        },
    .run = health,
}};

} // namespace
