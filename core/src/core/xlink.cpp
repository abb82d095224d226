// Links between components on two different schedulers: the channel per
// scheduler pair (a lock-free SPSC ring), the sender's port, the receiver's
// pump. See kamaelia/core/detail/xlink.hpp for the shape.
#include <kamaelia/core/component.hpp>
#include <kamaelia/core/detail/xlink.hpp>
#include <kamaelia/core/scheduler.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <mutex>
#include <string>

namespace kamaelia::detail {

namespace {

enum class entry_kind : std::uint8_t { data, forced, notice, close };

struct xentry {
    xroute* route; // nullptr: dropped before it left the sender's overflow (drop_oldest)
    message msg;
    entry_kind kind;
};

// A ring slot. `state` matters only for the data messages of a drop_oldest
// route: the sender may take such a message back (drop the oldest) while the
// pump may be taking it, and one exchange each decides who has it.
struct slot : xentry {
    bool cancellable = false; // a drop_oldest data message: the pump exchanges `state`
    std::atomic<std::uint8_t> state{0};
};
enum : std::uint8_t { slot_pending = 0, slot_taken = 1, slot_cancelled = 2 };

constexpr std::uint64_t ring_capacity = 1024; // a power of two; 64 KiB of slots a scheduler pair
constexpr std::uint64_t ring_mask = ring_capacity - 1;
constexpr std::uint64_t release_every = 256; // the pump gives room back within a long batch

std::uint64_t credit_used(const xroute& r, std::uint64_t returned) noexcept {
    std::uint64_t out = r.sent - r.cancelled;
    return out > returned ? out - returned : 0;
}

} // namespace

// One per (sender scheduler, receiver scheduler) pair, shared by the ports
// on the sender's side, the pump on the receiver's and the posts in flight.
//
// Memory orders. Slots are published by the tail's store (release) and
// taken by the pump after loading it (acquire); the pump gives them back by
// storing the head (release) and the sender reuses them after loading it
// (acquire). The pump's sleep must not miss a message: it arms
// `pump_armed_` then re-reads the tail and `has_overflow_`; the sender
// publishes the tail (or sets `has_overflow_`) then reads `pump_armed_`.
// Such store-then-load pairs need seq_cst on both sides (with only
// acquire/release each load may pass the store before it, and both sides
// miss each other). The credit's parked flag is the same pattern
// (xlink_port::push, the pump's return_credit).
//
// The overflow. When the ring is full the sender appends to an overflow
// under a mutex, and keeps doing so until the pump has taken it: the pump
// drains the ring, then takes the whole overflow (everything in it is newer
// than everything in the ring). The pump pulls it, so a sender whose
// scheduler has nothing else to do (or has stopped) still gets it across.
// A full ring means the receiver is behind by a ring's worth: the lock is
// then taken per message until the pump catches up, never otherwise.
class xlink_channel : public std::enable_shared_from_this<xlink_channel> {
public:
    xlink_channel(scheduler& from, scheduler& to)
        : from_(&from),
          to_(&to),
          target_(&to),
          slots_(std::make_unique<slot[]>(ring_capacity)) {}

    scheduler* target() const noexcept { return target_; }

    // ---- the sender's thread (the producer) -----------------------------
    // Queues in order: the ring, or the overflow while there is one.
    void enqueue(xroute* r, message&& m, entry_kind k) {
        for (;;) {
            // acquire: the pump's clearing it follows its taking the overflow.
            if (!has_overflow_.load(std::memory_order_acquire)) {
                std::uint64_t t = tail_.load(std::memory_order_relaxed);
                if (has_room(t)) {
                    put(t, r, std::move(m), k);
                    publish(t + 1);
                    return;
                }
            }
            {
                std::lock_guard<std::mutex> lk(overflow_m_);
                if (!has_overflow_.load(std::memory_order_relaxed)) {
                    if (has_room(tail_.load(std::memory_order_relaxed))) continue; // the pump made room meanwhile
                    overflow_.push_back(xentry{r, std::move(m), k});
                    // seq_cst: ordered before the load of pump_armed_ below.
                    has_overflow_.store(true, std::memory_order_seq_cst);
                } else {
                    overflow_.push_back(xentry{r, std::move(m), k});
                }
            }
            wake_if_armed();
            return;
        }
    }

    // drop_oldest found no credit: takes back r's oldest message the pump
    // has not taken yet. False if the pump has all of them already (the
    // credit comes back with its next batch).
    bool cancel_oldest(xroute& r) noexcept {
        const std::uint64_t t = tail_.load(std::memory_order_relaxed);
        while (!r.live.empty()) {
            std::uint64_t pos = r.live.front();
            r.live.pop_front();
            if (t - pos > ring_capacity) continue; // its slot holds a later message already
            slot& s = slots_[pos & ring_mask];
            std::uint8_t expected = slot_pending;
            // acq_rel: on success the message is ours (the pump will not
            // touch it); on failure the pump has it.
            if (s.state.compare_exchange_strong(expected, slot_cancelled, std::memory_order_acq_rel)) {
                s.msg.reset();
                ++r.cancelled;
                return true;
            }
        }
        if (!has_overflow_.load(std::memory_order_acquire)) return false;
        std::lock_guard<std::mutex> lk(overflow_m_);
        if (r.ov_epoch != overflow_epoch_) {
            r.ov_epoch = overflow_epoch_;
            r.ov_cursor = 0;
        }
        for (std::size_t i = r.ov_cursor; i < overflow_.size(); ++i) {
            xentry& e = overflow_[i];
            if (e.route != &r || e.kind != entry_kind::data) continue;
            e.route = nullptr;
            e.msg.reset();
            ++r.cancelled;
            r.ov_cursor = i + 1;
            // What was taken back goes once it is half the overflow: it
            // stays within the links' credit if the pump never comes.
            if (++overflow_dead_ * 2 > overflow_.size()) {
                std::erase_if(overflow_, [](const xentry& x) { return !x.route; });
                overflow_dead_ = 0;
                ++overflow_epoch_; // the indices moved
            }
            return true;
        }
        r.ov_cursor = overflow_.size();
        return false;
    }

    // The receiver's side has gone: what waits in the overflow for r goes.
    void forget_overflow(xroute* r) noexcept {
        std::lock_guard<std::mutex> lk(overflow_m_);
        std::erase_if(overflow_, [r](const xentry& e) { return e.route == r; });
        ++overflow_epoch_;
    }

    // ---- the receiver's thread (the consumer) ---------------------------
    bool has_entries() const noexcept {
        return tail_.load(std::memory_order_acquire) != head_.load(std::memory_order_relaxed) ||
               has_overflow_.load(std::memory_order_acquire);
    }

    // Hands everything published so far to `fn` in order, the ring first,
    // then the overflow, giving the ring's slots back as it goes.
    template <class Fn>
    void drain(Fn&& fn) {
        drain_ring(fn);
        if (!has_overflow_.load(std::memory_order_acquire)) return;
        // It was set after the sender's last push into the ring: that push
        // is visible now, and older than anything in the overflow.
        drain_ring(fn);
        {
            std::lock_guard<std::mutex> lk(overflow_m_);
            taken_overflow_.swap(overflow_);
            overflow_dead_ = 0;
            ++overflow_epoch_;
            // From here the sender pushes into the ring again: after these.
            has_overflow_.store(false, std::memory_order_release);
        }
        for (xentry& e : taken_overflow_) fn(e); // an entry taken back has no route: skipped
        taken_overflow_.clear();
    }

    // The pump is about to sleep: true if it may (nothing came meanwhile).
    bool arm_pump() noexcept {
        pump_armed_.store(true, std::memory_order_seq_cst);
        if (tail_.load(std::memory_order_seq_cst) == head_.load(std::memory_order_relaxed) &&
            !has_overflow_.load(std::memory_order_seq_cst))
            return true;
        // Something came: stay awake. If the sender disarmed it first, its
        // wake-up is on its way and finds the pump awake: harmless.
        pump_armed_.store(false, std::memory_order_relaxed);
        return false;
    }

    // Receiver's side gone: what is in the ring and the overflow is lost.
    void discard_all() noexcept {
        drain([](xentry& e) { e.msg.reset(); });
    }

    // ---- under ctl_: never per message ----------------------------------
    std::mutex ctl_;
    scheduler* from_;                             // null once the sender's scheduler has gone
    scheduler* to_;                               // null once the receiver's side has gone
    scheduler* const target_;                     // what to_ was (registry key)
    std::vector<std::unique_ptr<xroute>> routes_; // every open route
    std::vector<xroute*> room_;                   // routes whose parked senders may go on
    std::vector<xroute*> gone_;                   // routes whose receiver has gone
    bool from_wake_ = false;                      // a post to the sender's side is pending

    // Receiver's thread only (or both schedulers idle, in xlink_open).
    xlink_pump* pump = nullptr;

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

private:
    bool has_room(std::uint64_t t) noexcept {
        if (t - head_cache_ < ring_capacity) return true;
        head_cache_ = head_.load(std::memory_order_acquire); // slots the pump gave back are free to write
        return t - head_cache_ < ring_capacity;
    }
    void put(std::uint64_t t, xroute* r, message&& m, entry_kind k) noexcept {
        slot& s = slots_[t & ring_mask];
        s.route = r;
        s.msg = std::move(m);
        s.kind = k;
        s.cancellable = k == entry_kind::data && r->policy == delivery_policy::drop_oldest;
        if (s.cancellable) {
            s.state.store(slot_pending, std::memory_order_relaxed); // published with the tail
            // Positions a ring's length back are past the pump: at most a ring's worth is kept.
            while (!r->live.empty() && t - r->live.front() >= ring_capacity) r->live.pop_front();
            try {
                r->live.push_back(t);
            } catch (...) {
                // Out of memory: this one cannot be taken back; drop_oldest
                // falls back on the credit coming back.
            }
        }
    }
    void publish(std::uint64_t t) {
        // seq_cst: a release for the slot, and ordered before the load of
        // pump_armed_ (see the class comment).
        tail_.store(t, std::memory_order_seq_cst);
        wake_if_armed();
    }
    void wake_if_armed() {
        if (pump_armed_.load(std::memory_order_seq_cst) && pump_armed_.exchange(false, std::memory_order_acq_rel))
            post_pump();
    }
    void post_pump() {
        std::lock_guard<std::mutex> lk(ctl_);
        // Under the lock so the receiver's side cannot go meanwhile.
        if (to_) to_->post([self = shared_from_this()] { self->wake_pump(); });
    }
    template <class Fn>
    void drain_ring(Fn& fn) {
        std::uint64_t h = head_.load(std::memory_order_relaxed);
        const std::uint64_t t = tail_.load(std::memory_order_acquire);
        std::uint64_t given = h;
        while (h != t) {
            slot& s = slots_[h & ring_mask];
            ++h;
            if (!(s.cancellable && s.state.exchange(slot_taken, std::memory_order_acq_rel) == slot_cancelled))
                fn(static_cast<xentry&>(s)); // else the sender took it back
            if (h - given >= release_every) {
                head_.store(h, std::memory_order_release); // the sender may write these slots again
                given = h;
            }
        }
        if (h != given) head_.store(h, std::memory_order_release);
    }

    // Producer's line: the tail and what only the producer reads.
    alignas(64) std::atomic<std::uint64_t> tail_{0};
    std::uint64_t head_cache_ = 0;
    // Consumer's line.
    alignas(64) std::atomic<std::uint64_t> head_{0};
    std::vector<xentry> taken_overflow_; // the overflow the pump took, kept for its capacity
    // Written by both, rarely: once a batch, or while the ring is full.
    alignas(64) std::atomic<bool> pump_armed_{false};
    std::atomic<bool> has_overflow_{false}; // set by the sender, cleared by the pump
    std::mutex overflow_m_;
    std::vector<xentry> overflow_;     // oldest first; behind everything in the ring
    std::size_t overflow_dead_ = 0;    // entries in it taken back by drop_oldest
    std::uint64_t overflow_epoch_ = 0; // changes when its entries move (xroute::ov_cursor)
    alignas(64) std::unique_ptr<slot[]> slots_;
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
        for (;;) {
            resume_lanes();
            ch_->drain([this](xentry& e) { dispatch(e); });
            return_credit();
            if (ch_->has_entries()) continue;
            {
                std::lock_guard<std::mutex> lk(ch_->ctl_);
                if (ch_->routes_.empty() && lanes_.empty()) break; // the next link makes a new pump
            }
            // A push after arm_pump() posts a wake-up, which signal_external()
            // remembers if it comes before this wait: none is lost. A lane's
            // inbox making room wakes the pump as it wakes any parked sender.
            if (ch_->arm_pump()) co_await wait(ev_external);
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
            std::lock_guard<std::mutex> lk(ch_->ctl_);
            // A batch before this one may have listed it to wake.
            std::erase(ch_->gone_, r);
            std::erase(ch_->room_, r);
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
        woken_.clear();
        for (xroute* r : touched_) {
            r->returned_mine += r->taken;
            r->taken = 0;
            // seq_cst: ordered before the load of sender_parked, which the
            // sender sets before it reads `returned` again (xlink_port::push).
            r->returned.store(r->returned_mine, std::memory_order_seq_cst);
            if (r->sender_parked.load(std::memory_order_seq_cst) &&
                r->sender_parked.exchange(false, std::memory_order_acq_rel))
                woken_.push_back(r);
        }
        touched_.clear();
        if (woken_.empty()) return;
        std::lock_guard<std::mutex> lk(ch_->ctl_);
        ch_->room_.insert(ch_->room_.end(), woken_.begin(), woken_.end());
        ch_->post_sender_locked();
    }

    void note_gone(xroute* r, bool by_fail = false) {
        std::lock_guard<std::mutex> lk(ch_->ctl_);
        if (r->closed.load(std::memory_order_relaxed) != xroute::open) return;
        // release: nothing rides on it but the sender's next push reads it.
        r->closed.store(by_fail ? xroute::cut_by_fail : xroute::receiver_went, std::memory_order_release);
        ch_->gone_.push_back(r);
        ch_->post_sender_locked();
    }

    std::shared_ptr<xlink_channel> ch_;
    std::vector<std::unique_ptr<lane>> lanes_;
    std::vector<xroute*> touched_;
    std::vector<xroute*> woken_; // return_credit's, kept for its capacity
};

void xlink_channel::wake_pump() noexcept {
    if (pump && pump->state() == component_state::active) pump->signal_external();
}

void xlink_channel::run_sender() noexcept {
    std::vector<xroute*> room, gone;
    {
        std::lock_guard<std::mutex> lk(ctl_);
        from_wake_ = false;
        room.swap(room_);
        gone.swap(gone_);
        // A route whose port has closed may be freed by the pump at any
        // time; one whose port is open lives until this thread closes it.
        std::erase_if(room, [](xroute* r) { return !r->port; });
        std::erase_if(gone, [](xroute* r) { return !r->port; });
    }
    for (xroute* r : room)
        if (r->port) r->port->room();
    for (xroute* r : gone)
        if (r->port) r->port->released();
}

void xlink_channel::close_route(xroute* r) noexcept {
    bool receiver_there;
    {
        std::lock_guard<std::mutex> lk(ctl_);
        std::erase(room_, r);
        std::erase(gone_, r);
        r->port = nullptr;
        receiver_there = to_ != nullptr;
    }
    if (receiver_there) {
        // After the data already sent: the pump removes the route when it
        // gets here, so messages in transit still arrive.
        try {
            enqueue(r, message(), entry_kind::close);
        } catch (...) {
            // Out of memory for the overflow: the route stays in routes_
            // until the channel goes (messages in the ring still point at it).
            spdlog::error("cross-scheduler link: out of memory closing a route");
        }
        return;
    }
    // The receiver's side has gone and drained the ring; what is left in
    // the ring is never read, what waits in the overflow must not name it.
    forget_overflow(r);
    std::lock_guard<std::mutex> lk(ctl_);
    std::erase_if(routes_, [r](const std::unique_ptr<xroute>& p) { return p.get() == r; });
}

void xlink_channel::receiver_gone() noexcept {
    // Lost: there is no receiver left to take them. Before to_ goes: until
    // then a closing port leaves its route to the pump (a close entry), so
    // no route the ring names is freed while this reads it.
    discard_all();
    {
        std::lock_guard<std::mutex> lk(ctl_);
        to_ = nullptr;
        for (auto& r : routes_) {
            if (r->closed.load(std::memory_order_relaxed) != xroute::open) continue;
            r->closed.store(xroute::receiver_went, std::memory_order_release);
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

std::uint64_t xlink_port::in_transit(std::memory_order o) const noexcept {
    return credit_used(*route, route->returned.load(o));
}

xlink_port::result xlink_port::push(message& m, delivery_policy p, bool forced, const component* sender) {
    xroute& r = *route;
    // A link cut by "fail" at the receiver's inbox fails the sender's next
    // send, as a local link's full inbox does (the receiver was told there).
    if (std::uint8_t c = r.closed.load(std::memory_order_acquire); c != xroute::open)
        return c == xroute::cut_by_fail && !forced ? result::failed : result::gone;
    if (forced) {
        ch_->enqueue(&r, std::move(m), entry_kind::forced);
        return result::pushed;
    }
    // relaxed: a stale figure only under-counts the credit; the suspend
    // case below reads it again, ordered, before it parks.
    if (in_transit(std::memory_order_relaxed) >= r.limit) {
        switch (p) {
        case delivery_policy::suspend:
            // seq_cst store then load, as the pump's return_credit stores
            // `returned` then loads the flag: one of the two sees the other,
            // so a parked sender is always woken.
            r.sender_parked.store(true, std::memory_order_seq_cst);
            if (in_transit(std::memory_order_seq_cst) >= r.limit) return result::full;
            break; // credit came back meanwhile (a spare room() may follow: harmless)
        case delivery_policy::drop_newest: m.reset(); return result::dropped;
        case delivery_policy::drop_oldest: ch_->cancel_oldest(r); break;
        case delivery_policy::fail: {
            std::string what = (sender ? sender->name() : std::string("?")) + ": cross-scheduler link full (" +
                               std::to_string(in_transit(std::memory_order_relaxed)) +
                               " messages in transit), link cut";
            spdlog::warn("link failed: {}", what);
            ch_->enqueue(&r, message(ipc{ipc_kind::link_failed, what, sender ? sender->id() : 0}), entry_kind::notice);
            m.reset();
            return result::failed;
        }
        }
    }
    ++r.sent;
    ch_->enqueue(&r, std::move(m), entry_kind::data);
    return result::pushed;
}

// Sender's thread (from run_sender): credit came back.
void xlink_port::room() {
    xroute& r = *route;
    for (;;) {
        while (ring_->waiters_head && in_transit(std::memory_order_acquire) < r.limit) {
            send_waiter* w = ring_->waiters_head;
            ring_->waiters_head = w->next;
            if (!ring_->waiters_head) ring_->waiters_tail = nullptr;
            --ring_->parked;
            w->next = nullptr;
            w->delivered = true;
            ++r.sent;
            ch_->enqueue(&r, std::move(w->msg), entry_kind::data);
            w->target = nullptr;
            if (w->sender && w->sender->state() == component_state::active) w->sender->wake();
        }
        if (!ring_->waiters_head) return;
        // Park again, the same store-then-load as push().
        r.sender_parked.store(true, std::memory_order_seq_cst);
        if (in_transit(std::memory_order_seq_cst) >= r.limit) return;
    }
}

void xlink_port::released() { release_waiters(); }

// ---- making a link --------------------------------------------------------------

xlink_port* xlink_open(component& src, component& dst, inbox& d, delivery_policy p) {
    scheduler& from = *src.sched();
    scheduler& to = *dst.sched();
    std::shared_ptr<xlink_channel> ch;
    for (auto& c : from.xlinks_) {
        std::lock_guard<std::mutex> lk(c->ctl_);
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
        std::lock_guard<std::mutex> lk(ch->ctl_);
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
        std::lock_guard<std::mutex> lk(ch->ctl_);
        std::erase_if(ch->routes_, [r](const std::unique_ptr<xroute>& x) { return x.get() == r; });
        throw;
    }
    return new xlink_port(src, ch, r);
}

void xlink_scheduler_gone(scheduler& s, std::vector<std::shared_ptr<xlink_channel>>& sent_from) noexcept {
    for (auto& c : sent_from) {
        std::lock_guard<std::mutex> lk(c->ctl_);
        if (c->from_ == &s) c->from_ = nullptr;
    }
    sent_from.clear();
}

} // namespace kamaelia::detail
