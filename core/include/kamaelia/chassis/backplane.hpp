// Backplane: named publish/subscribe (Kamaelia's Backplane, PublishTo,
// SubscribeTo; docs/ORIGINAL.md, Chassis).
//
//   scheduler s;
//   backplane chat("CHAT");
//   chat.activate(s);                    // registers "CHAT" on s
//   ... pipeline(..., publish_to("CHAT"), subscribe_to("CHAT"), ...) ...
//
// - backplane("NAME") registers itself in its scheduler's service registry
//   when it is activated (construct, then activate; a second backplane
//   with the same name on that scheduler fails with service_already_exists).
//   Everything arriving on its "inbox" goes to every current subscriber.
//   producer_finished or shutdown_microprocess on its "control" ends it and
//   every subscriber (each gets that end message on its "control").
// - publish_to("NAME") hands its "inbox" straight to the backplane's inbox
//   (a passthrough link: publishing costs no extra hop). With forwarder=true
//   it also passes every message on out of its own "outbox". Its control
//   messages go out of "signal"; an end message ends it, never the backplane.
// - subscribe_to("NAME") emits everything published after it subscribed,
//   and also whatever reaches its own "inbox" (so it can sit mid-pipeline:
//   pipeline(..., publish_to("CHAT"), subscribe_to("CHAT"), ...)). It ends
//   on an end message on its control, or when the backplane ends; it leaves
//   the backplane when it ends or is destroyed.
//
// Fan-out never copies: the payload becomes one immutable shared node that
// every subscriber receives (recv<shared<T>>() sees the same address).
//
// Flow control, per subscriber: the backplane never waits for a subscriber.
// Each subscriber's queue is bounded twice: in messages (its inbox bound,
// in("inbox").set_limit(n)) and in bytes (set_max_bytes(n), default
// subscribe_to::default_max_bytes = 256 KiB; a message counts 64 bytes for
// its slot, plus its size if it is a string: backplane::message_bytes). A message that
// would pass either bound makes the subscriber either lose its oldest
// messages (delivery_policy::drop_oldest, the default), lose the new one
// (drop_newest), or be cut off (fail). A lone message bigger than the byte
// bound is still delivered to an empty queue. Cut off: what it queued is
// discarded at once, the cut is logged, and it gets a stop
// (shutdown_microprocess, text "... cut off from backplane ...") on its
// control, which it passes on out of "signal": a stop, not a graceful end,
// because a graceful end cannot get past a consumer that does not read
// (a sender parked on it hears only a stop), and the point of the cut is to
// free what that consumer holds. The policy is the backplane's, or the
// subscriber's own when it names one. The other subscribers are never
// stalled.
//
// A subscriber may skip some messages (subscribe_to's `skip`): they are
// never delivered to it, at no cost to the others (the chat uses it so a
// client does not hear its own lines).
//
// A subscriber may also feed a socket directly, with no component between
// them (the chat: lines are published framed, so every client's socket
// writes the one shared payload): set_map adjusts each message on its way
// out (in the subscriber's turn, not the fan-out's: a client whose line
// ending differs gets its own copy), set_farewell sends a last message
// before an end is passed on (the reason a client is disconnected), and
// set_consumer_limit bounds the consumer's inbox when it starts (with the
// byte bound, what a consumer that does not read can hold).
//
// Late subscribers miss earlier messages (there is no retention). A
// publisher that starts or a subscriber that subscribes when no backplane of
// that name exists fails with unknown_service (reported like any failure).
#pragma once

#include <kamaelia/core/box.hpp>
#include <kamaelia/core/component.hpp>
#include <kamaelia/core/message.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kamaelia {

class subscribe_to;

class backplane : public component {
public:
    // `overflow`: what happens to a subscriber whose inbox is full
    // (drop_oldest, drop_newest or fail; suspend is refused: a backplane
    // never waits for a subscriber).
    explicit backplane(std::string name, delivery_policy overflow = delivery_policy::drop_oldest);
    backplane(backplane&&) = default; // before activation only
    ~backplane() override;

    const std::string& backplane_name() const noexcept { return name_; }
    delivery_policy overflow() const noexcept { return overflow_; }

    // The service name a backplane called `name` registers ("backplane:NAME").
    static std::string service_name(std::string_view name);
    // The running backplane called `name` on `s`; unknown_service if none.
    static backplane& find(scheduler& s, std::string_view name);

    // Counters.
    std::uint64_t published() const noexcept { return published_; } // messages taken in
    std::uint64_t delivered() const noexcept { return delivered_; } // copies handed to subscribers
    std::uint64_t dropped() const noexcept { return dropped_; }     // lost to full subscribers
    std::uint64_t cut_off() const noexcept { return cut_; }         // subscribers cut (policy fail)
    std::size_t subscribers() const noexcept { return subs_.size(); }
    // Bytes queued for all current subscribers (what the fan-out holds).
    std::size_t queued_bytes() const noexcept;

    // What a message counts against a subscriber's byte bound: 64 (its slot
    // and node) plus, for a string, its size.
    static std::size_t message_bytes(const message& m) noexcept;

    std::string type_name() const override { return "backplane"; }

protected:
    task main() override;

private:
    friend class subscribe_to;
    struct exit_guard;
    struct subscriber {
        subscribe_to* sub;
        inbox* target;
        delivery_policy policy;
    };

    task body();
    void attach(subscribe_to& s);
    void detach(subscribe_to& s) noexcept;
    void remove_at(std::size_t i) noexcept;
    void fan_out(message m);
    // Ends every subscriber with `end` and leaves the registry (once).
    void close(const ipc& end) noexcept;

    std::string name_;
    delivery_policy overflow_;
    bool registered_ = false;
    bool closed_ = false;
    std::vector<subscriber> subs_;
    exit_guard* guard_ = nullptr;
    std::uint64_t published_ = 0;
    std::uint64_t delivered_ = 0;
    std::uint64_t dropped_ = 0;
    std::uint64_t cut_ = 0;
};

class publish_to : public component {
public:
    // forwarder: also pass every message on out of "outbox".
    explicit publish_to(std::string name, bool forwarder = false);
    publish_to(publish_to&&) = default;

    const std::string& backplane_name() const noexcept { return name_; }
    // Messages that reached it after its backplane had gone (discarded).
    std::uint64_t discarded() const noexcept { return discarded_; }

    std::string type_name() const override { return "publish_to"; }

protected:
    task main() override;

private:
    std::string name_;
    bool forwarder_;
    std::uint64_t discarded_ = 0;
};

class subscribe_to : public component {
public:
    explicit subscribe_to(std::string name);
    // With its own overflow policy instead of the backplane's.
    subscribe_to(std::string name, delivery_policy overflow);
    // Published messages for which skip(m) is true are not delivered to it.
    using skip_function = std::function<bool(const message&)>;
    subscribe_to(std::string name, skip_function skip);
    // Both (a bridge to another backplane must never be cut off).
    subscribe_to(std::string name, skip_function skip, delivery_policy overflow);
    subscribe_to(subscribe_to&&) = default; // before activation only
    ~subscribe_to() override;

    static constexpr std::size_t default_max_bytes = 256 * 1024;
    // The byte bound of what the backplane queues for it (see above).
    void set_max_bytes(std::size_t n) noexcept { max_bytes_ = n == 0 ? 1 : n; }
    std::size_t max_bytes() const noexcept { return max_bytes_; }
    // Bytes the backplane queued for it that it has not taken yet.
    std::size_t queued_bytes() const noexcept { return queued_bytes_; }

    // Applied to every message before it is passed on (see above).
    using map_function = std::function<void(message&)>;
    void set_map(map_function f) { map_ = std::move(f); }
    // Given the end message it is about to pass on (a finish, never a stop):
    // a message to send out of "outbox" first, or an empty one.
    using farewell_function = std::function<message(const ipc&)>;
    void set_farewell(farewell_function f) { farewell_ = std::move(f); }
    // The bound, in messages, of the inbox its "outbox" reaches, set when it
    // starts (0: that inbox keeps its own).
    void set_consumer_limit(std::uint32_t n) noexcept { consumer_limit_ = n; }

    const std::string& backplane_name() const noexcept { return name_; }
    bool subscribed() const noexcept { return bp_ != nullptr; }
    // Messages this subscriber lost because its inbox was full.
    std::uint64_t dropped() const noexcept { return dropped_; }
    // True once the backplane cut it off (policy fail).
    bool was_cut() const noexcept { return cut_; }

    std::string type_name() const override { return "subscribe_to"; }

protected:
    task main() override;

private:
    friend class backplane;
    struct exit_guard;
    void leave() noexcept;
    void taken(const message& m) noexcept;

    std::string name_;
    std::optional<delivery_policy> overflow_;
    skip_function skip_;
    map_function map_;
    farewell_function farewell_;
    backplane* bp_ = nullptr;
    std::size_t index_ = 0; // place in bp_->subs_ (O(1) removal)
    std::size_t max_bytes_ = default_max_bytes;
    std::size_t queued_bytes_ = 0;
    std::uint64_t dropped_ = 0;
    std::uint32_t consumer_limit_ = 0;
    bool cut_ = false;
    exit_guard* guard_ = nullptr;
};

} // namespace kamaelia
