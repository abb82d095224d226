// multicast_transceiver: one UDP socket in an IPv4 multicast group, as a
// component (Kamaelia's Multicast_transceiver, spec section 3.8, without the
// busy polling: it sleeps until the socket or its boxes need it).
//
//   inbox   datagrams to send to (group, port): std::string (one datagram)
//           or datagram_batch (several, one sendmmsg)
//   outbox  datagrams received: datagram_batch (one per readiness, up to
//           `batch` datagrams, each with its source)
//   control producer_finished: send what is queued, then end;
//           shutdown_microprocess: end now
//   signal  the end message, passed on
//
// Sending honours flow control: when the kernel's send buffer is full the
// datagrams stay queued, the component waits for writability, and it stops
// taking from its inbox once `send_queue_limit` bytes are queued (so the
// producer suspends). Nothing is dropped on the sending side; a datagram the
// kernel refuses outright (too big, no route) is counted and logged.
// Receiving reads batches with recvmmsg into one scratch buffer and emits
// them with flow control: a slow consumer makes the kernel drop (UDP), not
// this component grow.
//
// multicast_sender and multicast_receiver are the one-way forms.
#pragma once

#include <kamaelia/core/component.hpp>
#include <kamaelia/core/io_anchor.hpp>
#include <kamaelia/net/datagram.hpp>
#include <kamaelia/net/udp_options.hpp>

#include <asio/ip/udp.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kamaelia {

struct multicast_stats {
    std::uint64_t datagrams_sent = 0, bytes_sent = 0;
    std::uint64_t datagrams_received = 0, bytes_received = 0;
    std::uint64_t truncated = 0;   // received datagrams longer than max_datagram (dropped)
    std::uint64_t send_errors = 0; // datagrams the kernel refused (logged)
    std::uint64_t send_waits = 0;  // times the send buffer was full
};

class multicast_transceiver : public component {
public:
    explicit multicast_transceiver(multicast_options o = {});
    multicast_transceiver(multicast_transceiver&& o);
    ~multicast_transceiver() override;

    // Opens the socket now (on `s`'s io_context), so that a bad address or a
    // failed bind is an error at start, not a failed component later.
    // main() opens it otherwise. Throws std::system_error.
    void open(scheduler& s);
    const multicast_options& options() const noexcept { return opt_; }
    const multicast_stats& stats() const noexcept { return stats_; }
    // The bound local endpoint (after open; kept after the socket closes).
    asio::ip::udp::endpoint local_endpoint() const { return local_; }
    std::string type_name() const override { return "multicast_transceiver"; }

protected:
    enum class mode : std::uint8_t { send = 1, receive = 2, both = 3 };
    multicast_transceiver(multicast_options o, mode m);
    task main() override;

private:
    bool sends() const noexcept { return static_cast<std::uint8_t>(mode_) & 1; }
    bool receives() const noexcept { return static_cast<std::uint8_t>(mode_) & 2; }
    void arm_read();
    void arm_write();
    bool take_outgoing(message& m);
    void flush();
    int read_batch(datagram_batch& out); // datagrams read, -1: would block

    multicast_options opt_;
    mode mode_;
    std::optional<asio::ip::udp::socket> socket_;
    std::unique_ptr<io_anchor> anchor_;
    asio::ip::udp::endpoint dest_, local_;
    multicast_stats stats_;
    // send side: queued datagrams (batches and single ones), in order
    std::vector<datagram_batch> queue_;
    std::size_t head_ = 0, head_index_ = 0; // next batch, next datagram in it
    std::size_t queued_bytes_ = 0;
    bool write_blocked_ = false, write_armed_ = false;
    bool retry_later_ = false; // ENOBUFS: no writability event comes, retry on a timer
    // receive side
    std::vector<char> scratch_;
    bool readable_ = false, read_armed_ = false;
};

} // namespace kamaelia
