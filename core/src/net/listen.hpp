// Private: opening listening sockets (TCP or unix-domain) and describing
// accepted ones, for the listener.
#pragma once

#include <kamaelia/net/connection_info.hpp>
#include <kamaelia/net/listener.hpp>

#include <asio/generic/stream_protocol.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ip/v6_only.hpp>
#include <asio/local/stream_protocol.hpp>

#include <sys/socket.h>
#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>

namespace kamaelia::detail {

using generic_acceptor = asio::basic_socket_acceptor<asio::generic::stream_protocol>;

inline std::string endpoint_text(const asio::ip::tcp::endpoint& ep) {
    auto a = ep.address();
    std::string s = a.is_v6() ? "[" + a.to_string() + "]" : a.to_string();
    return s + ":" + std::to_string(ep.port());
}

// An IPv4/IPv6 generic endpoint as a TCP one (unset for other families).
inline asio::ip::tcp::endpoint tcp_endpoint(const asio::generic::stream_protocol::endpoint& g) {
    asio::ip::tcp::endpoint ep;
    int family = g.data()->sa_family;
    if ((family == AF_INET || family == AF_INET6) && g.size() <= ep.capacity()) {
        std::memcpy(ep.data(), g.data(), g.size());
        ep.resize(g.size());
    }
    return ep;
}

// Binds and listens (non-blocking). Throws std::system_error naming the
// address, with "address in use" for a busy port, prefixed by `who`.
inline std::unique_ptr<generic_acceptor> open_acceptor(asio::io_context& io, const std::string& who,
                                                       const std::string& bind_address, std::uint16_t port,
                                                       bool reuse_address, int backlog, bool reuse_port = false) {
    asio::error_code ec;
    auto addr = asio::ip::make_address(bind_address, ec);
    if (ec) throw std::system_error(ec, who + ": bad bind address \"" + bind_address + "\"");
    asio::ip::tcp::endpoint ep(addr, port);
    auto acc = std::make_unique<generic_acceptor>(io);
    auto fail = [&](const char* what) {
        std::string msg = who + ": cannot " + what + " " + endpoint_text(ep);
        if (ec == asio::error::address_in_use) msg += ": address in use";
        throw std::system_error(ec, msg);
    };
    acc->open(asio::generic::stream_protocol(ep.protocol()), ec);
    if (ec) fail("open a socket for");
    if (reuse_address) acc->set_option(asio::socket_base::reuse_address(true), ec);
    if (reuse_port) {
        // Several acceptors (one per scheduler) on one port: the kernel
        // spreads new connections over them.
        int one = 1;
        if (::setsockopt(acc->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
            ec = asio::error_code(errno, asio::error::get_system_category());
            fail("set SO_REUSEPORT on");
        }
    }
    if (addr.is_v6()) acc->set_option(asio::ip::v6_only(false), ec);
    ec.clear();
    acc->bind(asio::generic::stream_protocol::endpoint(ep), ec);
    if (ec) fail("bind");
    acc->listen(backlog, ec);
    if (ec) fail("listen on");
    acc->non_blocking(true, ec);
    return acc;
}

// A unix-domain listener at `path`. A socket file nobody answers on (left
// by a crash) is replaced; one a live server answers on is "address in use".
inline std::unique_ptr<generic_acceptor> open_unix_acceptor(asio::io_context& io, const std::string& who,
                                                            const std::string& path, int backlog) {
    namespace fs = std::filesystem;
    asio::local::stream_protocol::endpoint lep(path);
    std::error_code fec;
    if (fs::is_socket(path, fec)) {
        asio::local::stream_protocol::socket probe(io);
        asio::error_code ec;
        probe.connect(lep, ec);
        if (!ec)
            throw std::system_error(std::make_error_code(std::errc::address_in_use),
                                    who + ": cannot bind unix:" + path + ": address in use");
        fs::remove(path, fec);
    }
    auto acc = std::make_unique<generic_acceptor>(io);
    asio::error_code ec;
    auto fail = [&](const char* what) { throw std::system_error(ec, who + ": cannot " + what + " unix:" + path); };
    acc->open(asio::generic::stream_protocol(lep.protocol()), ec);
    if (ec) fail("open a socket for");
    acc->bind(asio::generic::stream_protocol::endpoint(lep), ec);
    if (ec) fail("bind");
    // Local clients (Postfix) run as other users.
    ::chmod(path.c_str(), 0666);
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
template <class Socket>
connection_info describe(const Socket& s, const listen_address& where) {
    connection_info info;
    if (where.is_unix()) {
        info.peer = "unix";
        info.local = where.unix_path;
        return info;
    }
    asio::error_code ec;
    auto remote = tcp_endpoint(s.remote_endpoint(ec));
    if (!ec) {
        info.peer = remote.address().to_string();
        info.peer_port = remote.port();
    }
    auto local = tcp_endpoint(s.local_endpoint(ec));
    if (!ec) {
        info.local = local.address().to_string();
        info.local_port = local.port();
    }
    return info;
}

} // namespace kamaelia::detail
