// tcp_client: an outgoing TCP connection as a component (Kamaelia's TCPClient).
//
//   inbox   bytes to write (std::string)      outbox  bytes received (std::string)
//   control producer_finished: flush, close   signal  socket_shutdown("connect to H:P
//           shutdown_microprocess: close now          failed: ...") if it never
//                                                     connected; otherwise what the
//                                                     connected_socket_adapter says
//
// It resolves the host (numeric addresses skip the resolver), connects with
// a timeout on the scheduler's io_context, then hands the socket to a
// connected_socket_adapter child whose boxes become its own (passthrough
// links), so once connected it behaves exactly like an accepted connection.
// Bytes sent before the connection is up wait in the inbox and go first.
//
// TLS: `tls_with(make_client_tls(), "name")` before activation makes the
// connection TLS from its first byte (SNI and, if the context verifies, the
// name checked); a later start_tls sent to its inbox upgrades it (STARTTLS).
#pragma once

#include <kamaelia/core/component.hpp>
#include <kamaelia/core/io_anchor.hpp>
#include <kamaelia/net/connected_socket_adapter.hpp>
#include <kamaelia/net/tls.hpp>

#include <asio/ip/tcp.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace kamaelia {

class tcp_client : public component {
public:
    tcp_client(std::string host, std::uint16_t port, duration connect_timeout = std::chrono::seconds(30),
               csa_options options = {});
    ~tcp_client() override;

    // TLS from the first byte (before activation). `server_name`: SNI and the
    // name verified; empty: the host given above.
    tcp_client& tls_with(std::shared_ptr<tls_context> context, std::string server_name = {});

    bool connected() const noexcept { return csa_ != nullptr; }
    // Why the connection could not be made (empty if it was).
    const std::string& error() const noexcept { return error_; }
    // The adapter once connected (counters, close reason), else nullptr.
    const connected_socket_adapter* adapter() const noexcept { return csa_; }
    std::string target() const;

protected:
    task main() override;

private:
    bool stop_pending();                        // an end message waits on control
    subtask<bool> wait_op(time_point deadline); // until the Asio operation completes; true if stopped

    std::string host_;
    std::uint16_t port_;
    duration timeout_;
    csa_options options_;
    start_tls tls_;
    std::unique_ptr<asio::ip::tcp::resolver> resolver_;
    // On the io_context's own executor (see connected_socket_adapter::socket_type).
    using socket_type = asio::basic_stream_socket<asio::ip::tcp, asio::io_context::executor_type>;
    std::unique_ptr<socket_type> socket_;
    io_anchor anchor_;
    connected_socket_adapter* csa_ = nullptr;
    std::string error_;
    bool op_done_ = false;
    asio::error_code op_ec_;
    asio::ip::tcp::resolver::results_type resolved_;
};

} // namespace kamaelia
