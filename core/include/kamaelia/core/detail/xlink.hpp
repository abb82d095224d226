// Private: links between components on two different schedulers (see
// scheduler_group.hpp and docs/ARCHITECTURE.md, "Cross-scheduler links").
//
// A cross-scheduler link from box S (sender's scheduler A) to inbox D
// (receiver's scheduler B) is made of:
//  - a port: an inbox-shaped end on A that S links to. Its limit is 0, so it
//    always counts as full and the inline send path falls through to the
//    out-of-line one, which sees remote() and pushes into the channel. A
//    same-scheduler send pays nothing for this: the full() check it always
//    made is the only branch.
//  - a route: the link's state shared by both ends (its policy, its credit).
//  - a channel per (A, B) pair: a bounded lock-free single-producer/
//    single-consumer ring (A's thread produces, B's consumes), so everything
//    A's components send to B's keeps its order, a producer_finished on
//    "signal"→"control" included (it cannot overtake data sent before it on
//    "outbox"→"inbox"). One ring per pair, not per link: the pump drains one
//    ring per batch whatever the number of links, and the cross-link order
//    above needs a single FIFO. When the ring is full the sender appends
//    to an overflow under a mutex until the pump, having drained the ring,
//    takes the overflow whole (order kept); the links' credit bounds both.
//  - a pump on B: a component that takes the whole ring at once and hands
//    each message on through an outbox of its own, locally linked to D with
//    the link's policy, so D's bound, its parked-sender wake-up and the four
//    policies hold as for a local link. A message that finds D full waits in
//    a lane of its sender (the sender's later messages behind it); other
//    senders' messages go on, so no sender waits behind another's full inbox.
// Wake-ups are batched: B is posted to once when the pump has gone to sleep
// and a message arrives, A once per batch that frees room for parked
// senders or finds a receiver gone.
// The per-message path takes no lock: a push is a slot write and a store
// of the tail; the credit is two counters, one per side. A mutex per channel
// remains for what is rare: making and closing routes, the lists of routes
// to wake, and posting wake-ups (once per batch); the overflow's mutex is
// taken only while the ring is full (the receiver a ring's worth behind).
#pragma once

#include <kamaelia/core/box.hpp>
#include <kamaelia/core/fwd.hpp>
#include <kamaelia/core/message.hpp>

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

namespace kamaelia::detail {

class xlink_channel;
class xlink_pump;

// One cross-scheduler link.
struct xroute {
    delivery_policy policy = delivery_policy::suspend;
    const void* sender = nullptr;              // the sending component: its messages keep their order
    std::uint32_t limit = default_inbox_limit; // messages in transit before the sender's policy acts
    // Sender's thread only.
    class xlink_port* port = nullptr; // null once closed (written under the channel's mutex)
    std::uint64_t sent = 0;           // data messages pushed
    std::uint64_t cancelled = 0;      // ...of which drop_oldest took back before the pump got them
    std::deque<std::uint64_t> live;   // drop_oldest: ring positions of its data messages
    // drop_oldest, under the channel's overflow mutex: in the overflow of
    // epoch `ov_epoch`, everything of this route before `ov_cursor` has
    // been taken back (so each cancel does not walk it again).
    std::uint64_t ov_epoch = 0;
    std::size_t ov_cursor = 0;
    // Written by the receiver's thread, read by the sender's: in transit is
    // sent - cancelled - returned.
    alignas(64) std::atomic<std::uint64_t> returned{0}; // handed to the receiver's inbox (or discarded there)
    std::atomic<std::uint8_t> closed{0};                // 0 open, 1 the receiver went, 2 cut by "fail" there
    // Set by the sender when it finds no credit, cleared by whoever wakes it.
    std::atomic<bool> sender_parked{false};
    // Receiver's thread only.
    std::string outbox; // the pump's box locally linked to the receiver's inbox
    box* pump_box = nullptr;
    std::uint32_t taken = 0;         // data messages handled in the pump's current batch
    std::uint64_t returned_mine = 0; // what `returned` says, without reading it back

    enum : std::uint8_t { open = 0, receiver_went = 1, cut_by_fail = 2 };
};

// The sender's end: what the source box links to.
class xlink_port final : public inbox {
public:
    xlink_port(component& src, std::shared_ptr<xlink_channel> ch, xroute* r) noexcept;
    ~xlink_port(); // parked senders go free (not delivered); the route closes

    enum class result : std::uint8_t { pushed, full, dropped, failed, gone };
    // Sender's thread. `forced` ignores the credit (send_forced, deliver).
    // On `failed` or `gone` the caller cuts the link (`link`), which deletes
    // this port.
    result push(message& m, delivery_policy p, bool forced, const component* sender);

    linkage* link = nullptr; // the linkage that owns this port
    xroute* route;
    // The receiver as it was when linked, for introspection: read on the
    // sender's thread without touching the other scheduler's graph.
    std::uint32_t sink_id = 0;
    std::string sink_box;

private:
    friend class xlink_channel;
    void room(); // sender's thread: credit came back, parked senders go on
    std::uint64_t in_transit(std::memory_order o) const noexcept;
    void released(); // sender's thread: the receiver has gone
    std::shared_ptr<xlink_channel> ch_;
    ring fake_{}; // limit 0: always full, never holds a message
};

// Makes the channel's route and pump for a link S→D (both schedulers idle
// or run by this thread) and returns the port S is to link to.
xlink_port* xlink_open(component& src, component& dst, inbox& d, delivery_policy p);

// Whether c is a pump (the graph shows the link S→D, not its pump).
bool is_xlink_pump(const component* c) noexcept;

// A scheduler going away: its channels stop posting to it.
void xlink_scheduler_gone(scheduler& s, std::vector<std::shared_ptr<xlink_channel>>& sent_from) noexcept;

} // namespace kamaelia::detail
