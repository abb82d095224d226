// Settings shared by the multicast components, and the functions that open
// their sockets (usable on their own, e.g. by a benchmark or a test).
//
// The defaults are safe: group 224.168.2.9, port 1600 (spec section 7.3),
// outgoing interface 127.0.0.1 and TTL 0, so nothing leaves the host until
// the user names a real interface and a TTL.
#pragma once

#include <asio/io_context.hpp>
#include <asio/ip/udp.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

namespace kamaelia {

struct multicast_options {
    std::string group = "224.168.2.9"; // an IPv4 multicast group
    std::uint16_t port = 1600;
    std::string interface = "127.0.0.1"; // outgoing interface and where the group is joined
    int ttl = 0;                         // 0: this host only
    bool loopback = true;                // deliver our own datagrams to receivers on this host
    std::uint16_t local_port = 0;        // the sender's source port (0: any)

    // Receiving: datagrams read per readiness (one recvmmsg), the largest
    // datagram accepted (longer ones are counted as truncated and dropped),
    // and the socket's receive buffer (0: the system default). A big buffer
    // rides out bursts while the scheduler is busy elsewhere.
    std::size_t batch = 32;
    std::size_t max_datagram = 65507;
    int receive_buffer = 4 * 1024 * 1024;
    int send_buffer = 0;
    // Sending: bytes queued in the sender (beyond them it stops taking from
    // its inbox, so upstream waits).
    std::size_t send_queue_limit = 1024 * 1024;
};

// Throws std::system_error with a readable message on a bad address or a
// failed option/bind. Sockets come back non-blocking.
//
// A sender: bound to (interface, local_port); IP_MULTICAST_IF, TTL and loop set.
asio::ip::udp::socket open_multicast_sender(asio::io_context& io, const multicast_options& o);
// A receiver: SO_REUSEADDR, bound to (group, port) so only that group's
// datagrams arrive, the group joined on the interface.
asio::ip::udp::socket open_multicast_receiver(asio::io_context& io, const multicast_options& o);
// Both on one socket: bound to (0.0.0.0, port), the group joined, sending
// options set. With loopback on it hears its own datagrams too.
asio::ip::udp::socket open_multicast_transceiver(asio::io_context& io, const multicast_options& o);

// (group, port) as an endpoint; throws std::system_error if the group is
// not an IPv4 multicast address.
asio::ip::udp::endpoint multicast_destination(const multicast_options& o);

} // namespace kamaelia
