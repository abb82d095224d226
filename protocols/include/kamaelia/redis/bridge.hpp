// redis_bridge: a backplane spread over several processes or hosts through a
// Redis pub/sub channel.
//
//   backplane chat("CHAT");
//   chat.activate(s);
//   redis_bridge bridge("CHAT", redis::parse_url("redis://10.0.0.5:6379"));
//   bridge.activate(s);
//
// The backplane stays what it was - local publishers reach local
// subscribers directly - and the bridge is one more subscriber and one more
// publisher on it:
// - everything published locally is published once to the Redis channel
//   (the backplane's name unless the URL says ?channel=NAME), wrapped in a
//   small envelope carrying this bridge's origin id (redis/envelope.hpp);
//   what it takes from the backplane in one turn goes in one PUBLISH, a
//   pack (options::pack_bytes), so Redis and every bridge on the channel
//   handle one command a burst, not one a message;
// - everything Redis delivers on the channel is published on the local
//   backplane, except the copies of our own messages (our origin id), which
//   local subscribers already had: each local subscriber gets a local
//   message exactly once. A plain payload (`redis-cli PUBLISH CHAT hello`,
//   no envelope) reaches every local subscriber as it is.
// Payloads are std::string, binary-safe; other payload types stay local
// (counted in not_forwarded()). Order per publisher is kept: one
// connection publishes, in the order the backplane fanned out.
//
// Guarantee: at most once, like Redis pub/sub itself. While Redis is down or
// being reconnected, local delivery goes on; what could not be forwarded is
// counted, the outage is logged once (and its end once), and the bridge
// reconnects with exponential back-off. Nothing here blocks the scheduler:
// the bridge is an ordinary component on two tcp_client children (one
// subscribed connection, one publishing), driving hiredis's RESP reader and
// command formatter. The password (redis/url.hpp) is never logged.
//
// Bounds: a message from Redis larger than max_payload closes the
// connection (and reconnects); local messages larger than it are not
// forwarded. What waits for Redis is bounded in bytes, not only in
// messages: every PUBLISH from the moment it is formatted until Redis
// answers it counts against max_pending_bytes (redis/detail/
// publish_window.hpp: the connection's queues, the kernel's buffers and
// Redis's input buffer alike). A Redis that is alive but stops reading
// (stopped, swapping, a stalled host) stops answering: once the bound is
// reached, local messages are dropped and counted instead of queued, the
// stall is logged once (then at most every 10 s, and when it ends), and
// the bridge never waits on the connection - Redis->local and control go
// on. When Redis reads again the answers free the window and forwarding
// resumes by itself. Before the bridge, its own subscriber's queue is
// bounded by subscribe_to's byte bound (256 KiB) and queue_limit messages;
// the bridge takes from it every turn it runs.
#pragma once

#include <kamaelia/chassis/backplane.hpp>
#include <kamaelia/core/component.hpp>
#include <kamaelia/redis/detail/publish_window.hpp>
#include <kamaelia/redis/envelope.hpp>
#include <kamaelia/redis/url.hpp>
#include <kamaelia/util/log_limiter.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_set>

namespace kamaelia {

namespace redis::detail {
class reply_reader;
} // namespace redis::detail

class redis_bridge : public component {
public:
    static constexpr std::size_t default_max_pending_bytes = 8 << 20;

    struct options {
        duration connect_timeout = std::chrono::seconds(5); // connect + AUTH/SELECT/SUBSCRIBE
        duration backoff_min = std::chrono::milliseconds(100);
        duration backoff_max = std::chrono::seconds(5);
        std::size_t max_payload = 1 << 20;
        std::uint32_t queue_limit = 8192;   // local messages queued before the bridge takes them
        std::size_t batch_bytes = 64 << 10; // PUBLISH commands written per send
        // Local messages packed into one PUBLISH (redis/envelope.hpp), at
        // most this many bytes (and never above max_payload); one larger
        // message goes alone. 0: one PUBLISH a message, in the one-message
        // envelope, the only one bridges before packs read.
        std::size_t pack_bytes = 16 << 10;
        // Bytes of PUBLISH commands not yet answered by Redis (one lone
        // command larger than this still goes when nothing else waits).
        std::size_t max_pending_bytes = default_max_pending_bytes;
    };

    // `where` should have its password resolved (redis::resolve_password).
    redis_bridge(std::string backplane_name, redis::url where);
    redis_bridge(std::string backplane_name, redis::url where, options o);
    redis_bridge(redis_bridge&&) = default; // before activation only
    ~redis_bridge() override;

    const std::string& backplane_name() const noexcept { return bp_name_; }
    const std::string& channel() const noexcept { return channel_; }
    const redis::origin_id& origin() const noexcept { return origin_; }
    const redis::url& where() const noexcept { return url_; }

    // True while subscribed and able to publish.
    bool linked() const noexcept { return linked_->load(std::memory_order_relaxed); }
    // The same, for another thread (the daemon's /healthz); the handle
    // outlives the bridge.
    std::shared_ptr<const std::atomic<bool>> link_state() const noexcept { return linked_; }
    std::uint64_t forwarded() const noexcept { return forwarded_; } // messages published: Redis answered
    std::uint64_t publishes() const noexcept { return publishes_; } // PUBLISH commands Redis answered
    std::uint64_t received() const noexcept { return received_; }   // from Redis to local subscribers
    std::uint64_t echoes() const noexcept { return echoes_; }       // our own copies, dropped
    std::uint64_t bad_packs() const noexcept { return bad_packs_; } // malformed packs from Redis, dropped
    std::uint64_t not_forwarded() const noexcept;                   // lost on the way to Redis
    // Of those, dropped because max_pending_bytes were waiting for Redis.
    std::uint64_t dropped_pending() const noexcept { return dropped_pending_; }
    // Bytes of PUBLISH commands waiting for Redis's answer now.
    std::size_t pending_bytes() const noexcept { return window_.bytes(); }
    std::uint64_t pending_commands() const noexcept { return window_.commands(); }
    std::uint64_t pending_messages() const noexcept { return in_flight_msgs_; } // in those commands
    std::uint64_t outages() const noexcept { return outages_; }
    std::uint64_t connects() const noexcept { return connects_; } // successful links, ever

    std::string type_name() const override { return "redis_bridge"; }

protected:
    task main() override;

private:
    enum class side { pub, sub };
    bool is_injected(const message& m);
    void open_link();
    void drop_link(std::string why); // by value: `why` may be a reader's error text, and the readers go
    // Handles what a connection sent; false if the link had to be dropped.
    bool take_pub_input();
    void check_linked();
    // Local messages -> PUBLISH commands, within the window.
    void forward_local();
    // The batch the connection had no room for, offered again; true once sent.
    bool offer_held();

    std::string bp_name_;
    redis::url url_;
    options opts_;
    std::string channel_;
    redis::origin_id origin_;

    subscribe_to* local_ = nullptr;
    component* pub_ = nullptr;
    component* sub_ = nullptr;
    std::unique_ptr<redis::detail::reply_reader> pub_reader_;
    std::unique_ptr<redis::detail::reply_reader> sub_reader_;
    std::size_t pub_handshake_ = 0; // replies still expected before PUBLISH replies
    std::size_t sub_handshake_ = 0; // same, then the subscribe confirmation
    bool subscribed_ = false;
    std::shared_ptr<std::atomic<bool>> linked_ = std::make_shared<std::atomic<bool>>(false);
    bool in_outage_ = false;
    time_point attempt_started_{};
    time_point next_attempt_{};
    time_point outage_since_{};
    duration backoff_{};
    std::uint64_t lost_at_outage_start_ = 0;
    std::unordered_set<const void*> injected_; // payloads we put on the backplane, not yet seen back
    redis::detail::publish_window window_;
    std::string held_;     // a formatted batch the connection refused (its inbox was full), in the window
    std::string envelope_; // scratch (the pack being filled), kept for its capacity
    std::deque<std::uint32_t> in_flight_; // messages in each PUBLISH not yet answered, oldest first
    std::uint64_t in_flight_msgs_ = 0;    // their sum
    log_limiter stall_log_;               // the window full: Redis does not read

    std::uint64_t forwarded_ = 0;
    std::uint64_t received_ = 0;
    std::uint64_t echoes_ = 0;
    std::uint64_t not_forwarded_ = 0;
    std::uint64_t outages_ = 0;
    std::uint64_t connects_ = 0;
    std::uint64_t publish_errors_ = 0;
    std::uint64_t publishes_ = 0;
    std::uint64_t bad_packs_ = 0;
    std::uint64_t dropped_pending_ = 0;
};

} // namespace kamaelia
