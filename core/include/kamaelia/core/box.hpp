// Inboxes, outboxes and box names.
//
// An inbox owns bounded FIFO storage; an outbox owns none. A box has at most
// one outgoing link; sending follows the links (outbox→outbox→inbox→inbox)
// straight to the final inbox, so delivery is one hop however long the
// passthrough chain. A chain that ends at an outbox discards.
//
// Storage is allocated on first use and grows by doubling up to the box's
// limit, so an idle box costs two pointers; shrink() gives it back but one
// slot. Every inbox is bounded; what
// happens when it is full is the policy of the link the message came through.
#pragma once

#include <kamaelia/core/fwd.hpp>
#include <kamaelia/core/message.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace kamaelia {

// What a link does when the final inbox is full.
enum class delivery_policy : std::uint8_t {
    suspend,     // the sender waits for room (co_await send); try_send reports false
    drop_newest, // the message being sent is discarded
    drop_oldest, // the oldest waiting message is discarded to make room
    fail,        // the link is cut, the receiver told on "control", and it is logged
};

std::string_view to_string(delivery_policy p) noexcept;

// Default bound of an inbox, in messages.
inline constexpr std::uint32_t default_inbox_limit = 256;

// A box name resolved at compile time when it is a literal: recv("inbox")
// compares a hash, never walks strings per message.
struct box_name {
    std::string_view name;
    std::uint32_t hash;

    static constexpr std::uint32_t fnv1a(std::string_view s) noexcept {
        std::uint32_t h = 2166136261u;
        for (char c : s) {
            h ^= static_cast<unsigned char>(c);
            h *= 16777619u;
        }
        return h;
    }
    template <std::size_t N>
    consteval box_name(const char (&s)[N]) noexcept : name(s, N - 1),
                                                      hash(fnv1a(std::string_view(s, N - 1))) {}
    constexpr box_name(std::string_view s) noexcept : name(s), hash(fnv1a(s)) {}
};

inline constexpr std::uint32_t inbox_hash = box_name::fnv1a("inbox");
inline constexpr std::uint32_t control_hash = box_name::fnv1a("control");
inline constexpr std::uint32_t outbox_hash = box_name::fnv1a("outbox");
inline constexpr std::uint32_t signal_hash = box_name::fnv1a("signal");

namespace detail {
struct send_waiter;
struct ring;
struct inbox_access;
class linkage_table;
class xlink_port;
class xlink_pump;
} // namespace detail

// The part every box has: its one outgoing link, its kind, the link's policy.
class box {
public:
    bool is_inbox() const noexcept { return (bits_ & outbox_bit) == 0; }
    bool is_outbox() const noexcept { return (bits_ & outbox_bit) != 0; }
    box* link() const noexcept { return reinterpret_cast<box*>(bits_ & ~tag_mask); }
    delivery_policy policy() const noexcept { return static_cast<delivery_policy>((bits_ >> 1) & 3u); }

    // The inbox where a message put into this box ends up, following links.
    // nullptr when the chain ends at an outbox (the message is discarded).
    inbox* final_inbox() noexcept;
    // The policy in force along the chain: the first non-default one wins.
    delivery_policy chain_policy() const noexcept;

protected:
    friend class component;
    friend class linkage;
    friend class scheduler;
    explicit box(bool outbox) noexcept : bits_(outbox ? outbox_bit : 0) {}
    box(const box&) = delete;
    box& operator=(const box&) = delete;

    void set_link(box* to, delivery_policy p) noexcept {
        bits_ = reinterpret_cast<std::uintptr_t>(to) | (static_cast<std::uintptr_t>(p) << 1) | (bits_ & outbox_bit);
    }
    void clear_link() noexcept { bits_ &= outbox_bit; }

    static constexpr std::uintptr_t outbox_bit = 1;
    static constexpr std::uintptr_t tag_mask = 7;
    std::uintptr_t bits_; // next box | policy << 1 | is_outbox
};

class outbox : public box {
public:
    outbox() noexcept : box(true) {}
};

class inbox : public box {
public:
    explicit inbox(component* owner) noexcept : box(false), owner_(owner) {}
    ~inbox();

    component* owner() const noexcept { return owner_; }

    // Messages in this box's own storage (a passthrough inbox holds none).
    std::size_t size() const noexcept;
    bool empty() const noexcept { return size() == 0; }
    std::uint32_t limit() const noexcept;
    bool full() const noexcept;
    // Messages ever delivered into this box.
    std::uint64_t delivered() const noexcept;
    // Senders parked on this box, waiting for room.
    std::size_t parked_senders() const noexcept;
    // The sender's end of a link to a component on another scheduler
    // (detail/xlink.hpp): it always counts as full, so only the out-of-line
    // send path ever asks.
    bool remote() const noexcept;

    // Changes the bound. Lowering it below the current size drops nothing;
    // the box just counts as full until it drains.
    void set_limit(std::uint32_t n);
    // Gives back the storage of an empty box but one slot (its count and
    // bound are kept); the next message beyond that slot grows it again.
    // For a component that goes idle for long after a burst or its first
    // messages: a server's connection handler holds its box for as long as
    // the client is connected. Does nothing while a message or a parked
    // sender waits.
    void shrink() noexcept;

    // Removes the oldest message; hands a parked sender's message into the
    // freed slot and wakes that sender (full→not-full only).
    message pop();
    const message& front() const noexcept;
    // Discards the oldest message without waking anyone (policy drop_oldest).
    void drop_front() noexcept;

private:
    friend class component;
    friend struct detail::inbox_access; // the rest of the core (chassis, ask, deliver)
    friend class detail::xlink_port;
    friend class detail::xlink_pump;
    // Delivers (following this box's passthrough link, if any), ignoring the
    // bound, waking the receiver on empty→non-empty. User code outside a
    // component uses kamaelia::deliver (deliver.hpp); a component body sends
    // through its own boxes (send, try_send, send_forced).
    void push_forced(message&& m);
    // Delivers if there is room; false when full.
    bool try_push(message& m);
    // Parks a sender (its message waits in `w` until there is room).
    void park(detail::send_waiter* w) noexcept;
    void unpark(detail::send_waiter* w) noexcept;
    void grow();
    void push_raw(message&& m);
    // The send fast path: builds a fast_payload T straight into the next
    // slot when there is room without growing; false (nothing done) otherwise.
    template <class T, class V>
    bool emplace_fast(V&& v) noexcept;
    // After a message left the box: hands the first parked sender's message
    // into the freed room and wakes that sender (out of line: rare).
    void refill();
    void release_waiters() noexcept; // the messages are lost: delivered = false
    void absorb_waiters();           // the messages enter the box (past its bound): delivered

    component* owner_;
    detail::ring* ring_ = nullptr;
};

namespace detail {

// A sender parked on a full inbox; lives in the sender's coroutine frame.
struct send_waiter {
    message msg;
    send_waiter* next = nullptr;
    inbox* target = nullptr;
    component* sender = nullptr;
    bool delivered = false; // false after the wait: the target went away
};

// The ring's header and its first slots are one slab chunk: four slots, or
// one after shrink() (mask 0: only such a chunk has a capacity of one).
struct ring {
    std::uint32_t mask; // capacity - 1 (capacity is a power of two)
    std::uint32_t head;
    std::uint32_t size;
    std::uint32_t limit;
    std::uint64_t delivered;
    send_waiter* waiters_head;
    send_waiter* waiters_tail;
    std::size_t parked;
    message* slots;
};

} // namespace detail

inline inbox* box::final_inbox() noexcept {
    box* b = this;
    while (box* n = b->link()) b = n;
    return b->is_inbox() ? static_cast<inbox*>(b) : nullptr;
}

inline delivery_policy box::chain_policy() const noexcept {
    const box* b = this;
    while (b->link()) {
        if (b->policy() != delivery_policy::suspend) return b->policy();
        b = b->link();
    }
    return delivery_policy::suspend;
}

inline std::size_t inbox::size() const noexcept { return ring_ ? ring_->size : 0; }
inline std::uint64_t inbox::delivered() const noexcept { return ring_ ? ring_->delivered : 0; }
inline std::size_t inbox::parked_senders() const noexcept { return ring_ ? ring_->parked : 0; }
inline std::uint32_t inbox::limit() const noexcept { return ring_ ? ring_->limit : default_inbox_limit; }
inline bool inbox::full() const noexcept { return ring_ ? ring_->size >= ring_->limit : false; }
inline bool inbox::remote() const noexcept { return ring_ && ring_->limit == 0; }
inline const message& inbox::front() const noexcept { return ring_->slots[ring_->head]; }

namespace detail {
// How the core outside class component (chassis, ask in service.hpp,
// deliver) reaches an inbox's internals. Not for user code: a component
// sends through its boxes, anything else calls kamaelia::deliver.
struct inbox_access {
    static bool try_push(inbox& i, message& m) { return i.try_push(m); }
    static void push_forced(inbox& i, message&& m) { i.push_forced(std::move(m)); }
};
} // namespace detail

} // namespace kamaelia
