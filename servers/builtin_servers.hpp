// The built-in servers: server_core configured by subclassing, the way the
// tutorial makes a server ("inheritable default values").
#pragma once

#include <kamaelia/net/server_core.hpp>
#include <kamaelia/protocols/chat.hpp>
#include <kamaelia/protocols/greeter.hpp>

namespace kamaelia::servers {

struct greeter_server : server_core {
    std::size_t max_line = default_max_line;
    greeter_server() {
        server_name = "greeter";
        port = 1601;
        protocol = [this](const connection_info&) { return greeter_protocol(max_line); };
    }
};

struct chat_server : server_core {
    std::size_t max_line = default_max_line;
    std::string backplane_name = "CHAT";                // activate backplane(backplane_name) first
    std::size_t queue_bytes = default_chat_queue_bytes; // per client, see chat.hpp
    chat_server() {
        server_name = "chat";
        port = 1700;
        protocol = [this](const connection_info& peer) {
            return chat_protocol(peer, backplane_name, max_line, queue_bytes);
        };
    }
};

} // namespace kamaelia::servers
