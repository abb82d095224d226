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
//  - a channel per (A, B) pair: one FIFO transit queue under one mutex, so
//    everything A's components send to B's keeps its order, a
//    producer_finished on "signal"→"control" included (it cannot overtake
//    data sent before it on "outbox"→"inbox").
//  - a pump on B: a component that takes the whole queue at once and hands
//    each message on through an outbox of its own, locally linked to D with
//    the link's policy, so D's bound, its parked-sender wake-up and the four
//    policies hold as for a local link. A message that finds D full waits in
//    a lane of its sender (the sender's later messages behind it); other
//    senders' messages go on, so no sender waits behind another's full inbox.
// Wake-ups are batched: B is posted to once when the queue turns non-empty
// (until the pump takes it), A once per batch that frees room for parked
// senders or finds a receiver gone.
#pragma once

#include <kamaelia/core/box.hpp>
#include <kamaelia/core/fwd.hpp>
#include <kamaelia/core/message.hpp>

#include <cstdint>
#include <memory>
#include <mutex>
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
    // Under the channel's mutex.
    std::uint32_t in_transit = 0; // data messages pushed, not yet handed to the receiver's inbox
    bool sender_parked = false;   // a sender waits for credit
    bool dst_closed = false;      // the receiver has gone (or its local link was cut)
    bool cut_by_fail = false;     // ...cut because its inbox was full: the sender's next send fails
    // Sender's thread only.
    class xlink_port* port = nullptr;
    // Receiver's thread only.
    std::string outbox; // the pump's box locally linked to the receiver's inbox
    box* pump_box = nullptr;
    std::uint32_t taken = 0; // data messages handled in the pump's current batch
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
    void room();     // sender's thread: credit came back, parked senders go on
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
