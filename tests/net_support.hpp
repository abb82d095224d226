// For tests over real loopback sockets: the real-time scheduler is run by
// hand until a condition holds, bounded by a generous liveness deadline.
#pragma once

#include <kamaelia/core/scheduler.hpp>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include <chrono>
#include <functional>
#include <utility>

namespace kamaelia::test {

inline bool run_until(scheduler& s, const std::function<bool()>& done,
                      std::chrono::seconds deadline_after = std::chrono::seconds(60)) {
    auto deadline = std::chrono::steady_clock::now() + deadline_after;
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        if (!s.run_once()) s.io().run_one_for(std::chrono::milliseconds(50));
    }
    return true;
}

// A connected loopback TCP pair on the scheduler's io_context.
struct socket_pair {
    asio::ip::tcp::socket server, client;
};

inline socket_pair connect_pair(scheduler& s) {
    asio::ip::tcp::acceptor acc(s.io(), asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    asio::ip::tcp::socket client(s.io());
    client.connect(acc.local_endpoint());
    asio::ip::tcp::socket server = acc.accept();
    return {std::move(server), std::move(client)};
}

} // namespace kamaelia::test
