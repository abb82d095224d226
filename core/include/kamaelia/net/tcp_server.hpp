// tcp_server: Kamaelia's TCPServer, the listening half of server_core on its
// own: a listener on a TCP address. It accepts connections and hands each
// one out as a ready connected_socket_adapter, for code that wires
// connections itself (a proxy, a test, a server that is not
// one-graph-per-connection).
//
//   tcp_server listener("127.0.0.1", 0);
//   link({listener, "protocolHandlerSignal"}, {my_wiring, "inbox"});
//   // my_wiring: recv<new_connection>(): add_child(std::move(c.csa)), link, activate
//
// Boxes, flow control and the out-of-descriptor back-off: see listener.hpp
// (a unix-domain socket: listener with listen_address::unix_socket).
#pragma once

#include <kamaelia/net/listener.hpp>

namespace kamaelia {

class tcp_server : public listener {
public:
    tcp_server(std::string bind_address, std::uint16_t port, csa_options options = {},
               std::shared_ptr<tls_context> tls = {})
        : listener(listen_address::tcp(std::move(bind_address), port), options, std::move(tls)) {
        name_for_logs = "tcp_server";
    }
    std::string type_name() const override { return "tcp_server"; }
};

} // namespace kamaelia
