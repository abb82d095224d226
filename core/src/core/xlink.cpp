// Links between components on two different schedulers: the channel per
// scheduler pair, the sender's port, the receiver's pump.
// See kamaelia/core/detail/xlink.hpp for the shape.
#include <kamaelia/core/component.hpp>
#include <kamaelia/core/detail/xlink.hpp>
#include <kamaelia/core/scheduler.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <string>

namespace kamaelia::detail {

namespace {

enum class entry_kind : std::uint8_t { data, forced, notice, close };

struct xentry {
    xroute* route; // nullptr: dropped in transit (drop_oldest)
    message msg;
    entry_kind kind;
};

} // namespace

// One per (sender scheduler, receiver scheduler) pair, shared by the ports
// on the sender's side, the pump on the receiver's and the posts in flight.
class xlink_channel : public std::enable_shared_from_this<xlink_channel> {
public:
    xlink_channel(scheduler& from, scheduler& to) : from_(&from), to_(&to), target_(&to) {}

    scheduler* target() const noexcept { return target_; }

    // ---- under m_ --------------------------------------------------------
    std::mutex m_;
    scheduler* from_;                             // null once the sender's scheduler has gone
    scheduler* to_;                               // null once the receiver's side has gone
    scheduler* const target_;                     // what to_ was (registry key)
    std::vector<xentry> q_;                       // oldest first
    std::vector<std::unique_ptr<xroute>> routes_; // every open route
    std::vector<xroute*> room_;                   // routes whose parked senders may go on
    std::vector<xroute*> gone_;                   // routes whose receiver has gone
    bool to_wake_ = false;                        // a post to the pump is pending
    bool from_wake_ = false;                      // a post to the sender's side is pending
    std::uint64_t next_route_ = 0;

    // Receiver's thread only (or both schedulers idle, in xlink_open).
    xlink_pump* pump = nullptr;

    void push_locked(xroute* r, message&& m, entry_kind k) {
        q_.push_back(xentry{r, std::move(m), k});
        if (!to_wake_ && to_) {
            to_wake_ = true;
            // Posted under the lock so the receiver's side cannot go meanwhile.
            to_->post([self = shared_from_this()] { self->wake_pump(); });
        }
    }
    void post_sender_locked() {
        if (from_wake_ || !from_) return;
        from_wake_ = true;
        from_->post([self = shared_from_this()] { self->run_sender(); });
    }
    void wake_pump() noexcept;  // receiver's thread
    void run_sender() noexcept; // sender's thread
    // Sender's thread: the port has gone (unlinked, or its component ended).
    void close_route(xroute* r) noexcept;
    // Receiver's thread: the pump is being destroyed with routes open.
    void receiver_gone() noexcept;
};

// ---- the pump (receiver's side) -------------------------------------------

// Takes the channel's queue a batch at a time and hands each message to its
// route's inbox. It never waits on one inbox with the whole queue behind it:
// a message that finds a full inbox (policy suspend) parks in a lane of its
// sender, and the rest of that sender's messages queue behind it in the lane
// (its order holds, end messages included), while other senders' messages
// go on. A lane's waiter is parked on the inbox like any sender, so the
// receiver's pop() hands it the freed slot and wakes the pump.
class xlink_pump final : public component {
public:
    explicit xlink_pump(std::shared_ptr<xlink_channel> ch) : ch_(std::move(ch)) { ch_->pump = this; }
    ~xlink_pump() override {
        teardown_now(); // the frame goes while ch_ is whole
        for (auto& ln : lanes_)
            if (ln->w.target) ln->w.target->unpark(&ln->w);
        lanes_.clear();
        if (ch_->pump == this) {
            ch_->pump = nullptr;
            ch_->receiver_gone();
        }
    }
    std::string type_name() const override { return "xlink_pump"; }

    // Receiver's thread: a route's local link to the receiver's inbox.
    void add_route(xroute& r, component& dst, inbox& d) {
        r.outbox = add_outbox("x" + std::to_string(reinterpret_cast<std::uintptr_t>(&r)));
        r.pump_box = &find_box(box_name(std::string_view(r.outbox)));
        component::link({*this, box_name(std::string_view(r.outbox))}, {dst, box_name(box_name_of_dst(dst, d))},
                        r.policy);
    }

protected:
    task main() override {
        std::vector<xentry> batch;
        for (;;) {
            {
                std::lock_guard<std::mutex> lk(ch_->m_);
                ch_->to_wake_ = false;
                batch.swap(ch_->q_);
            }
            resume_lanes();
            for (xentry& e : batch) dispatch(e);
            batch.clear();
            return_credit();
            {
                std::lock_guard<std::mutex> lk(ch_->m_);
                if (!ch_->q_.empty()) continue;
                if (ch_->routes_.empty() && lanes_.empty()) break; // the next link makes a new pump
            }
            // A push after the swap posts a wake-up, which signal_external()
            // remembers if it comes before this wait: none is lost. A lane's
            // inbox making room wakes the pump as it wakes any parked sender.
            co_await wait(ev_external);
        }
        ch_->pump = nullptr;
    }

private:
    struct lane {
        const void* sender;
        send_waiter w;            // the head message, parked on a full inbox
        xroute* route = nullptr;  // the head's route
        std::vector<xentry> rest; // what the sender sent after it
    };

    static std::string_view box_name_of_dst(component& dst, inbox& d) {
        for (auto& b : dst.boxes())
            if (b.b == &d) return b.name;
        throw bad_box("cross-scheduler link: the inbox is not a box of " + dst.name());
    }

    void dispatch(xentry& e) {
        xroute* r = e.route;
        if (!r) return; // dropped in transit
        for (auto& ln : lanes_)
            if (ln->sender == r->sender) {
                ln->rest.push_back(std::move(e));
                return;
            }
        if (handle(e)) return;
        // It found the inbox full: a lane for its sender.
        auto ln = std::make_unique<lane>();
        ln->sender = r->sender;
        park(*ln, e);
        lanes_.push_back(std::move(ln));
    }

    // False when the message must wait for room (it is still in e).
    bool handle(xentry& e) {
        xroute* r = e.route;
        switch (e.kind) {
        case entry_kind::data: {
            if (!r->pump_box->link()) {
                count(r);
                note_gone(r); // the receiver went: discarded
                return true;
            }
            inbox* fin = r->pump_box->final_inbox();
            if (fin && !fin->full()) { // the common case: straight in, no box lookup
                count(r);
                fin->push_raw(std::move(e.msg));
                return true;
            }
            if (fin && !fin->remote() && r->policy == delivery_policy::suspend) return false;
            count(r);
            box_name bn{std::string_view(r->outbox)};
            if (fin && fin->remote()) {
                send_forced(std::move(e.msg), bn); // passes on to a third scheduler
            } else {
                (void)try_send_message(e.msg, bn); // drop and fail act through the local link
            }
            if (!r->pump_box->link()) note_gone(r, true); // cut by "fail"
            return true;
        }
        case entry_kind::forced:
            if (r->pump_box->link()) {
                send_forced(std::move(e.msg), box_name(std::string_view(r->outbox)));
            } else {
                note_gone(r);
            }
            return true;
        case entry_kind::notice:
            if (inbox* fin = r->pump_box->final_inbox(); fin && fin->owner())
                deliver(*fin->owner(), "control", std::move(e.msg));
            return true;
        case entry_kind::close: {
            std::erase(touched_, r);
            delete_box(r->outbox);
            std::lock_guard<std::mutex> lk(ch_->m_);
            std::erase(ch_->gone_, r);
            std::erase_if(ch_->routes_, [r](const std::unique_ptr<xroute>& p) { return p.get() == r; });
            return true;
        }
        }
        return true;
    }

    void park(lane& ln, xentry& e) {
        ln.route = e.route;
        ln.w.msg = std::move(e.msg);
        ln.w.sender = this;
        ln.w.delivered = false;
        ln.w.target = e.route->pump_box->final_inbox();
        ln.w.target->park(&ln.w);
    }

    // Lanes whose head went in (or whose inbox went away) go on in order.
    void resume_lanes() {
        for (std::size_t i = 0; i < lanes_.size();) {
            lane& ln = *lanes_[i];
            if (ln.w.target) { // still parked
                ++i;
                continue;
            }
            count(ln.route);
            if (!ln.w.delivered || !ln.route->pump_box->link()) note_gone(ln.route);
            std::size_t k = 0;
            bool parked = false;
            for (; k < ln.rest.size(); ++k) {
                if (!ln.rest[k].route) continue;
                if (!handle(ln.rest[k])) {
                    park(ln, ln.rest[k]);
                    parked = true;
                    ++k;
                    break;
                }
            }
            ln.rest.erase(ln.rest.begin(), ln.rest.begin() + static_cast<std::ptrdiff_t>(k));
            if (parked) {
                ++i;
            } else {
                lanes_.erase(lanes_.begin() + static_cast<std::ptrdiff_t>(i));
            }
        }
    }

    void count(xroute* r) {
        if (r->taken++ == 0) touched_.push_back(r);
    }

    // Credit for what was handed on goes back; parked senders hear of it
    // with one post per batch.
    void return_credit() {
        if (touched_.empty()) return;
        std::lock_guard<std::mutex> lk(ch_->m_);
        bool wake = false;
        for (xroute* r : touched_) {
            r->in_transit -= std::min(r->in_transit, r->taken);
            r->taken = 0;
            if (r->sender_parked) {
                r->sender_parked = false;
                ch_->room_.push_back(r);
                wake = true;
            }
        }
        if (wake) ch_->post_sender_locked();
        touched_.clear();
    }

    void note_gone(xroute* r, bool by_fail = false) {
        std::lock_guard<std::mutex> lk(ch_->m_);
        if (r->dst_closed) return;
        r->dst_closed = true;
        r->cut_by_fail = by_fail;
        ch_->gone_.push_back(r);
        ch_->post_sender_locked();
    }

    std::shared_ptr<xlink_channel> ch_;
    std::vector<std::unique_ptr<lane>> lanes_;
    std::vector<xroute*> touched_;
};

void xlink_channel::wake_pump() noexcept {
    if (pump && pump->state() == component_state::active) pump->signal_external();
}

void xlink_channel::run_sender() noexcept {
    std::vector<xroute*> gone;
    {
        std::lock_guard<std::mutex> lk(m_);
        from_wake_ = false;
        gone.swap(gone_);
        for (xroute* r : room_)
            if (r->port) r->port->room();
        room_.clear();
    }
    // Routes stay until their port closes them, which only this thread does.
    for (xroute* r : gone)
        if (r->port) r->port->released();
}

void xlink_channel::close_route(xroute* r) noexcept {
    std::lock_guard<std::mutex> lk(m_);
    std::erase(room_, r);
    std::erase(gone_, r);
    r->port = nullptr;
    if (to_) {
        // After the data already sent: the pump removes the route when it
        // gets here, so messages in transit still arrive.
        try {
            push_locked(r, message(), entry_kind::close);
            return;
        } catch (...) {
            // out of memory: fall through, the route is freed now
            for (auto& e : q_)
                if (e.route == r) e.route = nullptr;
        }
    }
    std::erase_if(routes_, [r](const std::unique_ptr<xroute>& p) { return p.get() == r; });
}

void xlink_channel::receiver_gone() noexcept {
    std::vector<xentry> q;
    {
        std::lock_guard<std::mutex> lk(m_);
        to_ = nullptr;
        q.swap(q_); // lost: there is no receiver left to take them
        for (auto& r : routes_) {
            if (r->dst_closed) continue;
            r->dst_closed = true;
            gone_.push_back(r.get());
        }
        if (!gone_.empty()) post_sender_locked();
    }
}

// ---- the port (sender's side) ------------------------------------------------

bool is_xlink_pump(const component* c) noexcept { return dynamic_cast<const xlink_pump*>(c) != nullptr; }

xlink_port::xlink_port(component& src, std::shared_ptr<xlink_channel> ch, xroute* r) noexcept
    : inbox(&src),
      route(r),
      ch_(std::move(ch)) {
    fake_.mask = 0;
    fake_.limit = 0;
    ring_ = &fake_;
    r->port = this;
}

xlink_port::~xlink_port() {
    release_waiters(); // they wake with delivered = false
    ring_ = nullptr;
    ch_->close_route(route);
}

xlink_port::result xlink_port::push(message& m, delivery_policy p, bool forced, const component* sender) {
    std::lock_guard<std::mutex> lk(ch_->m_);
    xroute& r = *route;
    // A link cut by "fail" at the receiver's inbox fails the sender's next
    // send, as a local link's full inbox does (the receiver was told there).
    if (r.dst_closed) return r.cut_by_fail && !forced ? result::failed : result::gone;
    if (!ch_->to_) return result::gone;
    if (forced) {
        ch_->push_locked(&r, std::move(m), entry_kind::forced);
        return result::pushed;
    }
    if (r.in_transit >= r.limit) {
        switch (p) {
        case delivery_policy::suspend: r.sender_parked = true; return result::full;
        case delivery_policy::drop_newest: m.reset(); return result::dropped;
        case delivery_policy::drop_oldest:
            for (auto& e : ch_->q_)
                if (e.route == &r && e.kind == entry_kind::data) {
                    e.route = nullptr;
                    e.msg.reset();
                    --r.in_transit;
                    break;
                }
            break;
        case delivery_policy::fail: {
            std::string what = (sender ? sender->name() : std::string("?")) + ": cross-scheduler link full (" +
                               std::to_string(r.in_transit) + " messages in transit), link cut";
            spdlog::warn("link failed: {}", what);
            ch_->push_locked(&r, message(ipc{ipc_kind::link_failed, what, sender ? sender->id() : 0}),
                             entry_kind::notice);
            m.reset();
            return result::failed;
        }
        }
    }
    ++r.in_transit;
    ch_->push_locked(&r, std::move(m), entry_kind::data);
    return result::pushed;
}

// Under the channel's lock (from run_sender): credit came back.
void xlink_port::room() {
    xroute& r = *route;
    while (ring_->waiters_head && r.in_transit < r.limit) {
        send_waiter* w = ring_->waiters_head;
        ring_->waiters_head = w->next;
        if (!ring_->waiters_head) ring_->waiters_tail = nullptr;
        --ring_->parked;
        w->next = nullptr;
        w->delivered = true;
        ++r.in_transit;
        ch_->push_locked(&r, std::move(w->msg), entry_kind::data);
        w->target = nullptr;
        if (w->sender && w->sender->state() == component_state::active) w->sender->wake();
    }
    if (ring_->waiters_head) r.sender_parked = true;
}

void xlink_port::released() { release_waiters(); }

// ---- making a link --------------------------------------------------------------

xlink_port* xlink_open(component& src, component& dst, inbox& d, delivery_policy p) {
    scheduler& from = *src.sched();
    scheduler& to = *dst.sched();
    std::shared_ptr<xlink_channel> ch;
    for (auto& c : from.xlinks_) {
        std::lock_guard<std::mutex> lk(c->m_);
        if (c->target() == &to && c->to_ == &to) {
            ch = c;
            break;
        }
    }
    if (!ch) {
        ch = std::make_shared<xlink_channel>(from, to);
        from.xlinks_.push_back(ch);
    }
    xroute* r;
    {
        std::lock_guard<std::mutex> lk(ch->m_);
        ch->routes_.push_back(std::make_unique<xroute>());
        r = ch->routes_.back().get();
        r->policy = p;
        r->limit = d.limit();
        r->sender = &src;
    }
    try {
        if (!ch->pump) to.spawn(std::make_unique<xlink_pump>(ch));
        ch->pump->add_route(*r, dst, d);
    } catch (...) {
        std::lock_guard<std::mutex> lk(ch->m_);
        std::erase_if(ch->routes_, [r](const std::unique_ptr<xroute>& x) { return x.get() == r; });
        throw;
    }
    return new xlink_port(src, ch, r);
}

void xlink_scheduler_gone(scheduler& s, std::vector<std::shared_ptr<xlink_channel>>& sent_from) noexcept {
    for (auto& c : sent_from) {
        std::lock_guard<std::mutex> lk(c->m_);
        if (c->from_ == &s) c->from_ = nullptr;
    }
    sent_from.clear();
}

} // namespace kamaelia::detail
