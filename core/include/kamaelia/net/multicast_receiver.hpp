// multicast_receiver: joins (group, port) on the interface and emits what
// arrives as datagram_batch messages on "outbox" (one per readiness, each
// datagram with its source). Ends on producer_finished or
// shutdown_microprocess.
//
// See multicast_transceiver.hpp for the boxes and udp_options.hpp for the
// settings (batch size, largest datagram, receive buffer).
#pragma once

#include <kamaelia/net/multicast_transceiver.hpp>

namespace kamaelia {

class multicast_receiver : public multicast_transceiver {
public:
    explicit multicast_receiver(multicast_options o = {}) : multicast_transceiver(std::move(o), mode::receive) {}
    multicast_receiver(multicast_receiver&&) = default;
    std::string type_name() const override { return "multicast_receiver"; }
};

} // namespace kamaelia
