// tcp_server: Kamaelia's TCPServer, the listening half of server_core on its
// own. It accepts connections and hands each one out as a ready
// connected_socket_adapter, for code that wires connections itself (a
// proxy, a test, a server that is not one-graph-per-connection).
//
//   tcp_server listener("127.0.0.1", 0);
//   link({listener, "protocolHandlerSignal"}, {my_wiring, "inbox"});
//   // my_wiring: recv<new_connection>(): add_child(std::move(c.csa)), link, activate
//
// Boxes: control (shutdown_microprocess: close the listener and end);
// protocolHandlerSignal (a new_connection per accepted socket, sent with
// flow control: a receiver that falls behind stops the accepting, and the
// kernel's backlog pushes back on clients); signal (the end notice).
// Out-of-descriptor accept errors back off instead of spinning.
#pragma once

#include <kamaelia/core/component.hpp>
#include <kamaelia/core/io_anchor.hpp>
#include <kamaelia/net/connected_socket_adapter.hpp>
#include <kamaelia/net/connection_info.hpp>
#include <kamaelia/net/tls.hpp>

#include <asio/ip/tcp.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kamaelia {

// One accepted connection: its adapter (not yet activated) and who it is.
struct new_connection {
    std::unique_ptr<connected_socket_adapter> csa;
    connection_info info;
};

class tcp_server : public component {
public:
    tcp_server(std::string bind_address, std::uint16_t port, csa_options options = {},
               std::shared_ptr<tls_context> tls = {});
    ~tcp_server() override;

    bool reuse_address = true;
    bool tcp_nodelay = true;
    int backlog = 1024;

    // Binds and listens now (also done at activation); throws std::system_error
    // naming the address ("... address in use").
    void listen();
    std::uint16_t bound_port() const;
    std::uint64_t accepted_total() const noexcept { return accepted_; }
    std::string type_name() const override { return "tcp_server"; }

protected:
    task main() override;

private:
    void arm_accept();

    std::string bind_address_;
    std::uint16_t port_;
    csa_options options_;
    std::shared_ptr<tls_context> tls_;
    std::unique_ptr<asio::ip::tcp::acceptor> acceptor_;
    io_anchor anchor_;
    std::vector<asio::ip::tcp::socket> pending_;
    std::optional<time_point> paused_until_;
    std::uint64_t accepted_ = 0;
    bool armed_ = false;
};

} // namespace kamaelia
