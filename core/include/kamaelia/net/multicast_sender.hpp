// multicast_sender: every datagram on "inbox" (std::string, or a
// datagram_batch) goes to (group, port); flow-controlled, never drops on the
// sending side. Ends after producer_finished once the queue is sent.
//
//   pipeline(file_reader(...), packetiser(...),
//            multicast_sender({.group = "224.168.2.9", .port = 1600})).run();
//
// See multicast_transceiver.hpp for the boxes and udp_options.hpp for the
// settings (interface 127.0.0.1 and TTL 0 by default).
#pragma once

#include <kamaelia/net/multicast_transceiver.hpp>

namespace kamaelia {

class multicast_sender : public multicast_transceiver {
public:
    explicit multicast_sender(multicast_options o = {}) : multicast_transceiver(std::move(o), mode::send) {}
    multicast_sender(multicast_sender&&) = default;
    std::string type_name() const override { return "multicast_sender"; }
};

} // namespace kamaelia
