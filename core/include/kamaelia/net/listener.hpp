// listener: the one accept loop (Kamaelia's TCPServer), on a TCP address or
// a unix-domain socket, plain or TLS. It accepts connections and hands each
// one out as a ready (not yet activated) connected_socket_adapter.
// server_core composes one; tcp_server is the TCP-only spelling of it.
//
//   listener l(listen_address::tcp("127.0.0.1", 0));
//   listener u(listen_address::unix_socket("/run/app.sock"));
//   link({l, "protocolHandlerSignal"}, {my_wiring, "inbox"});
//
// Boxes: control (shutdown_microprocess: close the listener and end);
// protocolHandlerSignal (a new_connection per accepted socket, sent with
// flow control: a receiver that falls behind stops the accepting, and the
// kernel's backlog pushes back on clients); signal (the end notice).
//
// Accepting drains the kernel's queue in batches (one readiness wait per
// batch, not per connection). Out of descriptors (EMFILE, ENFILE, ENOBUFS,
// ENOMEM), it pauses 100 ms instead of spinning; the pause is logged when it
// starts, then at most once a minute with a count, and when accepting works
// again.
//
// A unix socket path left over by a dead process is replaced; one a live
// server answers on is "address in use". The socket is made 0666 (local
// clients such as Postfix run as other users) and removed when the
// listener ends.
#pragma once

#include <kamaelia/core/component.hpp>
#include <kamaelia/core/io_anchor.hpp>
#include <kamaelia/net/connected_socket_adapter.hpp>
#include <kamaelia/net/connection_info.hpp>
#include <kamaelia/net/tls.hpp>

#include <asio/basic_socket_acceptor.hpp>
#include <asio/generic/stream_protocol.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace kamaelia {

class log_limiter;

// Where a listener listens: a TCP address and port, or a unix socket path.
struct listen_address {
    std::string bind_address = "0.0.0.0"; // TCP: "::" for IPv6 (dual-stack where allowed)
    std::uint16_t port = 0;               // TCP: 0 picks a free port
    std::string unix_path;                // set: a unix-domain socket instead of TCP

    static listen_address tcp(std::string address, std::uint16_t port) { return {std::move(address), port, {}}; }
    static listen_address unix_socket(std::string path) { return {{}, 0, std::move(path)}; }
    bool is_unix() const noexcept { return !unix_path.empty(); }
    // "127.0.0.1:1601", "[::1]:25" or "unix:/run/app.sock" (the bound port once listening).
    std::string text() const;
};

// One accepted connection: its adapter (not yet activated) and who it is.
struct new_connection {
    std::unique_ptr<connected_socket_adapter> csa;
    connection_info info;
};

class listener : public component {
public:
    explicit listener(listen_address where, csa_options options = {}, std::shared_ptr<tls_context> tls = {});
    ~listener() override;

    // ---- settings (before listen()) -----------------------------------
    std::string name_for_logs = "listener";
    bool reuse_address = true;
    bool reuse_port = false; // SO_REUSEPORT: one listener per scheduler on one TCP port
    bool tcp_nodelay = true;
    bool keepalive = false;
    // The accept queue: a burst of connects while the scheduler is busy
    // waits here; beyond it the kernel drops SYNs and the client retries
    // after its 1 s SYN timeout. The kernel caps it at net.core.somaxconn.
    int backlog = 4096;
    std::size_t accept_batch = 256; // connections accepted per wake-up (fairness)

    // Binds and listens now (also done at activation); throws std::system_error
    // naming the address ("... address in use"). The socket belongs to `io`,
    // by default the scheduler's this listener runs on (or will: a parent
    // that adopts it later passes its own).
    void listen(asio::io_context* io = nullptr);
    bool listening() const noexcept;
    // The address as bound (the real port when 0 was asked for).
    const listen_address& address() const noexcept { return bound_; }
    std::uint16_t bound_port() const;
    std::uint64_t accepted_total() const noexcept { return accepted_; }
    // Accept failures from lack of descriptors or memory, ever.
    std::uint64_t accept_failures() const noexcept { return failures_; }
    bool accept_paused() const noexcept { return paused_until_.has_value(); }
    std::string type_name() const override { return "listener"; }

protected:
    task main() override;

private:
    bool accept_one(new_connection& out); // false: nothing more to accept now
    void arm_wait();
    void close_listener() noexcept;

    listen_address where_, bound_;
    csa_options options_;
    std::shared_ptr<tls_context> tls_;
    std::unique_ptr<asio::basic_socket_acceptor<asio::generic::stream_protocol>> acceptor_;
    io_anchor anchor_;
    std::unique_ptr<log_limiter> backoff_;
    std::optional<time_point> paused_until_;
    std::uint64_t accepted_ = 0, failures_ = 0;
    bool armed_ = false, readable_ = true;
    bool owns_path_ = false; // we created the unix socket file: remove it at the end
};

} // namespace kamaelia
