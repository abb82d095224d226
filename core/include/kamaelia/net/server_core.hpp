// server_core: a server that builds a component graph per connection, on a
// TCP address or a unix-domain socket (plain or TLS).
//
//   struct greeter_server : kamaelia::server_core {
//       greeter_server() {
//           port = 1601;
//           protocol = [](const connection_info&) {
//               return pipeline(chunks_to_lines(), pure_transformer(...), lines_to_chunks());
//           };
//       }
//   };
//
// Settings are public members with defaults a subclass (or the caller)
// overrides before the server starts: Kamaelia's "inheritable defaults".
// For every accepted connection the protocol factory returns the handler
// (a component or a whole graph); the server wires it to a
// connected_socket_adapter:
//   csa.outbox → handler.inbox     handler.outbox → csa.inbox
//   csa.signal → handler.control   handler.signal → csa.control
// and, if the handler has an outbox "serversignal", that to the server's
// control (a protocol may stop the whole server). The handler hears
// producer_finished when the peer half-closes and socket_shutdown when the
// socket is gone; it closes the connection by ending (its end message
// reaches the adapter, which flushes and closes).
//
// Like Kamaelia's ServerCore composing a TCPServer, it composes a listener
// (listener.hpp: the one accept loop) and takes the new_connection messages
// it sends; the caps, the inactivity timeout, the grace period and the logs
// below apply to every kind of listener alike.
//
// Inactivity: each adapter stamps the time of the last bytes received; a
// coarse timer wheel (timer_wheel.hpp) holds one deadline per connection and
// looks at a connection only when its deadline comes, so an idle server with
// thousands of connections does not wake up.
//
// Stopping the server (shutdown_microprocess on control, or stop_serving())
// stops accepting, tells every connection graph, waits up to `grace`, then
// force-closes what is left.
#pragma once

#include <kamaelia/core/component.hpp>
#include <kamaelia/net/connected_socket_adapter.hpp>
#include <kamaelia/net/connection_info.hpp>
#include <kamaelia/net/listener.hpp>
#include <kamaelia/net/timer_wheel.hpp>
#include <kamaelia/net/tls.hpp>

#include <asio/ip/tcp.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <vector>

namespace kamaelia {

// Holds the factory; assignable from any callable returning a component
// (by value, moved into place) or a std::unique_ptr to one.
class protocol_factory {
public:
    using function = std::function<std::unique_ptr<component>(const connection_info&)>;
    protocol_factory() = default;
    template <class F>
    requires std::is_invocable_v<F&, const connection_info&> protocol_factory(F f) {
        *this = std::move(f);
    } // NOLINT: a callable is a factory
    template <class F>
    requires std::is_invocable_v<F&, const connection_info&> protocol_factory& operator=(F f) {
        f_ = [f = std::move(f)](const connection_info& ci) mutable -> std::unique_ptr<component> {
            using R = std::remove_cvref_t<std::invoke_result_t<F&, const connection_info&>>;
            if constexpr (std::is_convertible_v<R, std::unique_ptr<component>>) {
                return f(ci);
            } else {
                return std::make_unique<R>(f(ci));
            }
        };
        return *this;
    }
    explicit operator bool() const noexcept { return static_cast<bool>(f_); }
    std::unique_ptr<component> operator()(const connection_info& ci) const { return f_(ci); }

private:
    function f_;
};

// The connection counts behind the caps, shared by the shards of one server
// that run on several schedulers (one server_core per scheduler on one port,
// the daemon's --threads): the caps then hold for the whole server. Taken
// once per accept and once per close, never per message.
class connection_caps {
public:
    // Counts a new connection from `peer` (no per-address count for a unix
    // socket) unless a cap is reached; true if counted.
    bool try_open(const std::string& peer, bool unix_socket, std::size_t max_total, std::size_t max_per_address);
    void close(const std::string& peer, bool unix_socket) noexcept;
    std::size_t open() const;
    // Connection ids unique across the shards (each listener counts its own).
    std::uint64_t next_id() noexcept { return ids_.fetch_add(1, std::memory_order_relaxed) + 1; }

private:
    std::atomic<std::uint64_t> ids_{0};
    mutable std::mutex m_;
    std::size_t open_ = 0;
    std::unordered_map<std::string, std::size_t> per_address_;
};

class server_core : public component {
public:
    server_core();
    ~server_core() override;

    // ---- settings (defaults a subclass overrides) ------------------------
    std::string bind_address = "0.0.0.0"; // "::" for IPv6 (dual-stack where the system allows)
    std::uint16_t port = 1601;            // 0 picks a free port
    std::string unix_path;                // set: listen on this unix-domain socket instead of TCP
    protocol_factory protocol;
    std::string server_name = "server"; // for logs
    bool reuse_address = true;
    bool tcp_nodelay = true;
    bool keepalive = false;
    int backlog = 4096;                         // accept queue (listener.hpp: why 4096)
    std::size_t max_connections = 10000;        // beyond it, new connections are closed at once
    std::size_t max_per_address = 0;            // per client address (0: no cap; not for unix sockets,
                                                // whose clients have no address)
    std::optional<duration> inactivity_timeout; // silence from the peer that closes a connection
    duration grace = std::chrono::seconds(5);   // how long stopping waits for connections to end
    csa_options socket_options;
    std::shared_ptr<tls_context> tls; // set: every connection is TLS (make_server_tls)
    // Shards: several server_cores on one TCP port, one per scheduler, each
    // with its own listener (SO_REUSEPORT) and its own connection graphs.
    bool reuse_port = false;
    std::shared_ptr<connection_caps> shared_caps; // set: the caps count every shard's connections
    bool log_listening = true;                    // the "listening on" line (once per server, not per shard)
    std::string shard_name;                       // "scheduler 1": said in the connection log lines

    // ---- running ------------------------------------------------------
    // Binds and listens now (also done at activation). Throws
    // std::system_error naming the address, e.g. "... 0.0.0.0:1601: address
    // in use", so a busy port fails loudly at start.
    void listen();
    bool listening() const noexcept;
    asio::ip::tcp::endpoint local_endpoint() const; // TCP only
    std::uint16_t bound_port() const;               // 0 on a unix socket
    // Where it listens ("127.0.0.1:1601", "unix:/run/x.sock"), once listening.
    std::string address_text() const;
    std::size_t connections() const noexcept { return conns_.size(); }
    std::uint64_t accepted_total() const noexcept { return accepted_; }
    std::uint64_t refused_total() const noexcept { return refused_; }
    // Totals over every connection, open and closed (read when scraped:
    // closed ones are added up as they are reaped, open ones walked here).
    struct traffic {
        std::uint64_t bytes_in = 0, bytes_out = 0;
        std::uint64_t messages_in = 0, messages_out = 0; // chunks read / writes queued
        std::uint64_t write_calls = 0;                   // write system calls (coalesced: few per burst)
    };
    traffic traffic_total() const;
    // Stop accepting, end every connection (graceful, then forced after grace).
    void stop_serving();
    // Called once listening (the daemon logs "listening on ADDR:PORT" here).
    std::function<void(const listen_address&)> on_listening;

protected:
    task main() override;

private:
    struct conn {
        connected_socket_adapter* csa;
        component* handler;
        connection_info info;
        time_point opened;
        bool orphan_watch = false; // the socket is gone; the handler has `grace` to end
    };
    void open_connection(new_connection nc);
    void reap_connections();
    void on_deadline(std::uint64_t id, time_point now);
    void begin_stop();

    std::unique_ptr<listener> own_listener_; // until main() adopts it
    listener* listener_ = nullptr;
    std::unordered_map<std::uint64_t, conn> conns_; // keyed by connection id
    std::unordered_map<std::string, std::size_t> per_address_;
    timer_wheel<std::uint64_t> deadlines_;
    std::unique_ptr<log_limiter> refusing_;
    std::uint64_t accepted_ = 0, refused_ = 0;
    traffic closed_traffic_;
    std::uint64_t reaped_seen_ = 0; // children_finished_count() at the last reap
    bool stopping_ = false;
    // The whole server's open connections when stop_serving() was called
    // (the first shard, whose log line counts them): taken then, because
    // the other shards start closing theirs on their own threads before
    // this shard's begin_stop() runs.
    std::size_t open_at_stop_ = 0;
    bool counted_at_stop_ = false;
    std::optional<time_point> stop_deadline_;
};

} // namespace kamaelia
