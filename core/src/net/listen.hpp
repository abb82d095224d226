// Private: opening a listening socket, shared by server_core and tcp_server.
#pragma once

#include <asio/ip/tcp.hpp>
#include <asio/ip/v6_only.hpp>

#include <memory>
#include <string>
#include <system_error>

namespace kamaelia::detail {

inline std::string endpoint_text(const asio::ip::tcp::endpoint& ep) {
    auto a = ep.address();
    std::string s = a.is_v6() ? "[" + a.to_string() + "]" : a.to_string();
    return s + ":" + std::to_string(ep.port());
}

// Binds and listens (non-blocking). Throws std::system_error naming the
// address, with "address in use" for a busy port, prefixed by `who`.
inline std::unique_ptr<asio::ip::tcp::acceptor> open_acceptor(asio::io_context& io, const std::string& who,
                                                              const std::string& bind_address, std::uint16_t port,
                                                              bool reuse_address, int backlog) {
    asio::error_code ec;
    auto addr = asio::ip::make_address(bind_address, ec);
    if (ec) throw std::system_error(ec, who + ": bad bind address \"" + bind_address + "\"");
    asio::ip::tcp::endpoint ep(addr, port);
    auto acc = std::make_unique<asio::ip::tcp::acceptor>(io);
    auto fail = [&](const char* what) {
        std::string msg = who + ": cannot " + what + " " + endpoint_text(ep);
        if (ec == asio::error::address_in_use) msg += ": address in use";
        throw std::system_error(ec, msg);
    };
    acc->open(ep.protocol(), ec);
    if (ec) fail("open a socket for");
    if (reuse_address) acc->set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
    if (addr.is_v6()) acc->set_option(asio::ip::v6_only(false), ec);
    ec.clear();
    acc->bind(ep, ec);
    if (ec) fail("bind");
    acc->listen(backlog, ec);
    if (ec) fail("listen on");
    acc->non_blocking(true, ec);
    return acc;
}

// Accept errors that mean "out of descriptors or memory": back off, do not spin.
inline bool accept_should_back_off(const asio::error_code& ec) {
    return ec == asio::error::no_descriptors || ec.value() == ENFILE || ec == asio::error::no_buffer_space ||
           ec == asio::error::no_memory;
}

// The peer's and our addresses of an accepted socket.
template <class Info>
Info describe(const asio::ip::tcp::socket& s) {
    Info info;
    asio::error_code ec;
    auto remote = s.remote_endpoint(ec);
    if (!ec) {
        info.peer = remote.address().to_string();
        info.peer_port = remote.port();
    }
    auto local = s.local_endpoint(ec);
    if (!ec) {
        info.local = local.address().to_string();
        info.local_port = local.port();
    }
    return info;
}

} // namespace kamaelia::detail
