// Who is on the other end of a connection: what a protocol factory receives
// (Kamaelia's peer, peerport, localip, localport).
#pragma once

#include <cstdint>
#include <string>

namespace kamaelia {

struct connection_info {
    std::string peer; // peer address, e.g. "127.0.0.1" or "::1"; "unix" on a unix socket
    std::uint16_t peer_port = 0;
    std::string local; // local address the connection arrived on (a unix socket's path)
    std::uint16_t local_port = 0;
    std::uint64_t id = 0; // connection number within its server

    // "addr:port" ("[v6]:port" for IPv6): how the chat server names a client;
    // "unix:PATH#ID" on a unix socket (its clients have no address).
    std::string name() const {
        if (peer == "unix") return "unix:" + local + "#" + std::to_string(id);
        return (peer.find(':') != std::string::npos ? "[" + peer + "]" : peer) + ":" + std::to_string(peer_port);
    }
};

} // namespace kamaelia
