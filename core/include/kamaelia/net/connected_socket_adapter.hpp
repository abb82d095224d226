// The connected socket adapter (CSA): one connection (TCP or unix-domain)
// as a component.
//
//   inbox   bytes to write (std::string)      outbox  bytes received (std::string)
//   control producer_finished: flush, close   signal  producer_finished when the peer
//           shutdown_microprocess: close now          half-closes, socket_shutdown
//                                                      once the socket is closed
//
// Exactly one write in flight; writes are non-blocking and only wait for
// writability when the kernel buffer is full. Output is coalesced: bytes
// taken from the inbox are written when the scheduler next polls its I/O
// (before it sleeps, or every few cycles under load), so what the handler
// sends in one busy stretch leaves in one gathered write. They are written
// at once instead when coalesce_bytes are pending, when they answer input
// read since the last write (request/response latency does not grow),
// during TLS setup, and when closing; nothing pending is lost on a close.
// Pending bytes (deferred or waiting for the kernel alike) are bounded:
// above the high watermark the adapter stops reading the socket and stops
// taking from its inbox (so a client that does not read its replies cannot
// make the server buffer without bound); below the low watermark it resumes.
// Reading: while the connection's inputs are small (a command, a request
// line) the reactor reads them into a small buffer of the adapter's own the
// moment they arrive: one recv a request and no epoll_ctl, as a plain Asio
// server's async_read_some. Larger input waits for readability and is read
// into a 64 KiB buffer shared by the scheduler's thread, so no connection
// holds a large buffer, idle or not. TLS always waits (OpenSSL reads). Received
// chunks are sent with flow control: a handler whose inbox is full stops the
// reading, and TCP pushes back on the client.
//
// TLS: constructed with a start_tls (or sent one through the inbox, for
// STARTTLS), the adapter runs the handshake and then reads and writes
// through OpenSSL with the same contract; see tls.hpp.
#pragma once

#include <kamaelia/core/component.hpp>
#include <kamaelia/core/io_anchor.hpp>
#include <kamaelia/net/tls.hpp>

#include <asio/generic/stream_protocol.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace kamaelia {

struct csa_options {
    std::size_t high_watermark = 256 * 1024;           // pending write bytes that pause reading
    std::size_t low_watermark = 64 * 1024;             // ...and resume it
    std::size_t read_budget = 64 * 1024;               // bytes read per wake-up (fairness)
    std::size_t coalesce_bytes = 64 * 1024;            // pending bytes written at once; 0: no coalescing
    duration close_timeout = std::chrono::seconds(10); // a graceful close that cannot flush gives up;
                                                       // also bounds the TLS handshake and close_notify
};

class connected_socket_adapter : public component {
public:
    // The socket it runs on: bound to the scheduler's io_context, not to a
    // type-erased executor (56 bytes in the socket and in every pending
    // operation, for every connection). listener and tcp_client make these.
    using socket_type = asio::basic_stream_socket<asio::generic::stream_protocol, asio::io_context::executor_type>;

    // With tls.context set, the connection is TLS from its first byte.
    connected_socket_adapter(socket_type socket, csa_options options = {}, start_tls tls = {});
    // Sockets with the default executor are moved onto their io_context's
    // own (the descriptor is registered with the reactor again: two system
    // calls, once).
    connected_socket_adapter(asio::generic::stream_protocol::socket socket, csa_options options = {},
                             start_tls tls = {});
    connected_socket_adapter(asio::ip::tcp::socket socket, csa_options options = {}, start_tls tls = {});
    ~connected_socket_adapter() override;

    // Scheduler time of the last bytes received (for inactivity timeouts).
    time_point last_activity() const noexcept { return last_rx_; }
    std::size_t pending_write_bytes() const noexcept { return queued_bytes_; }
    std::uint64_t bytes_in() const noexcept { return bytes_in_; }
    std::uint64_t bytes_out() const noexcept { return bytes_out_; }
    // Write system calls made (writev, or SSL_write on TLS), to see the coalescing.
    std::uint64_t write_calls() const noexcept { return write_calls_; }
    // Why it closed: "peer closed", "closed by handler", an error text...
    const std::string& close_reason() const noexcept { return reason_; }
    // True once a TLS handshake has completed on this connection.
    bool tls_established() const noexcept;

protected:
    task main() override;

private:
    struct tls_state;
    enum class io_result { ok, would_block, eof, error };
    void arm_read(bool even_if_paused = false);
    void arm_write();
    bool flush();          // false on a write error
    bool flush_or_defer(); // flush() now, or post it to the next I/O poll when coalescing allows
    bool flush_tls();
    void consume(std::size_t wrote); // drops written bytes from the queue
    io_result read_some(std::size_t& n);
    bool tls_step();                // advances a pending handshake; false on failure
    bool tls_busy() const noexcept; // start_tls queued or handshaking: hold input and output
    void close_socket() noexcept;

    // What the reactor's read into rx_buf_ found (see arm_read).
    enum class rx_state : std::uint8_t { none, data, eof, error };
    static constexpr std::size_t rx_size = 64;

    socket_type socket_;
    csa_options opt_;
    io_anchor anchor_;
    // A chunk to write: bytes of its own, or a share of a payload many
    // subscribers hold (a backplane's fan-out), written from that one copy.
    struct out_chunk {
        std::string own;
        shared<std::string> ref;
        const char* data() const noexcept { return ref ? ref->data() : own.data(); }
        std::size_t size() const noexcept { return ref ? ref->size() : own.size(); }
        std::string& owned() { // to change it (TLS joins small chunks)
            if (ref) {
                own.assign(*ref);
                ref = {};
            }
            return own;
        }
    };
    std::vector<out_chunk> queue_; // (a deque allocates even when empty)
    std::size_t head_ = 0;         // first unwritten chunk
    std::size_t head_offset_ = 0;  // bytes of it already written
    std::size_t queued_bytes_ = 0;
    std::uint64_t bytes_in_ = 0, bytes_out_ = 0, write_calls_ = 0;
    time_point last_rx_{};
    std::string reason_;
    std::unique_ptr<tls_state> tls_; // only on TLS connections
    std::array<char, rx_size> rx_buf_; // the reactor reads small input here
    std::uint8_t rx_n_ = 0;            // bytes in rx_buf_
    rx_state rx_got_ = rx_state::none;
    bool readable_ = false, read_armed_ = false;
    bool rx_small_ = true; // the last input was small: the next read goes into rx_buf_
                           // (fixed while a read is armed: only reading changes it)
    bool write_blocked_ = false;
    bool read_closed_ = false, read_paused_ = false;
    bool unanswered_ = false;   // input read, no write since: the next output answers it
    bool flush_posted_ = false; // a deferred flush waits for the I/O poll
    bool write_failed_ = false; // ...and it failed (reason_ says why)
    bool finishing_ = false;    // producer_finished: flush, then close
};

} // namespace kamaelia
