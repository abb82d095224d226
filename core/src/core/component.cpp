#include <kamaelia/core/component.hpp>
#include <kamaelia/core/detail/xlink.hpp>
#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/core/services.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>

namespace kamaelia {

namespace {

bool same(box_name a, std::string_view b) noexcept { return a.name == b; }

} // namespace

// ---- linkage ----------------------------------------------------------------

int linkage::passthrough() const noexcept {
    if (src_->is_inbox()) return 1;
    if (dst_->is_outbox()) return 2;
    return 0;
}

std::string_view linkage::source_box_name() const { return src_owner_->box_name_of(src_); }
std::string_view linkage::sink_box_name() const { return dst_owner_->box_name_of(dst_); }
std::uint32_t linkage::remote_sink_id() const noexcept { return port_ ? port_->sink_id : 0; }
std::string_view linkage::remote_sink_box_name() const noexcept {
    return port_ ? std::string_view(port_->sink_box) : std::string_view();
}

// ---- component: construction ----------------------------------------------

std::uint32_t component::next_id() noexcept {
    static std::atomic<std::uint32_t> counter{0};
    return counter.fetch_add(1, std::memory_order_relaxed) + 1;
}

component::component() noexcept : id_(next_id()) {}

component::component(component&& o) : id_(o.id_), shutdown_kind_(o.shutdown_kind_) {
    if (o.state_ != component_state::created || o.parent_ ||
        (o.ext_ && (!o.ext_->links_in.empty() || !o.ext_->links_out.empty())) || o.outbox_.link() || o.signal_.link() ||
        o.inbox_.link() || o.control_.link())
        throw bad_state("a component can only be moved before it is activated, adopted or linked");
    ext_ = std::exchange(o.ext_, nullptr);
    inbox_.ring_ = std::exchange(o.inbox_.ring_, nullptr);
    control_.ring_ = std::exchange(o.control_.ring_, nullptr);
    if (ext_) {
        for (auto& b : ext_->boxes) {
            if (b.b->is_inbox()) static_cast<inbox*>(b.b.get())->owner_ = this;
        }
        for (component* c = ext_->first_child; c; c = c->next_sibling_) c->parent_ = this;
    }
    o.id_ = next_id(); // the husk is a different, empty component
}

component::~component() { teardown(); }

std::string component::type_name() const {
    std::string n = detail::demangle(typeid(*this).name());
    auto tpl = n.find('<');
    auto cut = n.rfind("::", tpl);
    if (cut != std::string::npos) n.erase(0, cut + 2);
    return n;
}

std::string component::name() const {
    std::string n = type_name() + "_" + std::to_string(id_);
    if (ext_ && ext_->rare && !ext_->rare->tag.empty()) n += "_" + ext_->rare->tag;
    return n;
}

void component::set_tag(std::string tag) { rare().tag = std::move(tag); }

std::string component::error_text() const { return ext_ && ext_->rare ? ext_->rare->error : std::string(); }

detail::component_ext& component::ext() {
    if (!ext_) ext_ = new detail::component_ext();
    return *ext_;
}

detail::component_rare& component::rare() {
    auto& e = ext();
    if (!e.rare) e.rare = std::make_unique<detail::component_rare>();
    return *e.rare;
}

// ---- boxes ------------------------------------------------------------------

box* component::lookup(box_name b) const noexcept {
    auto* self = const_cast<component*>(this);
    switch (b.hash) {
    case inbox_hash:
        if (same(b, "inbox")) return &self->inbox_;
        break;
    case control_hash:
        if (same(b, "control")) return &self->control_;
        break;
    case outbox_hash:
        if (same(b, "outbox")) return &self->outbox_;
        break;
    case signal_hash:
        if (same(b, "signal")) return &self->signal_;
        break;
    default: break;
    }
    if (ext_) {
        for (auto& e : ext_->boxes)
            if (e.hash == b.hash && e.name == b.name) return e.b.get();
    }
    return nullptr;
}

box& component::lookup_or_throw(box_name b) const {
    if (box* x = lookup(b)) return *x;
    throw bad_box(name() + " has no box \"" + std::string(b.name) + "\"");
}

inbox& component::inbox_or_throw(box_name b) const {
    box& x = lookup_or_throw(b);
    if (!x.is_inbox()) throw bad_box(name() + ": \"" + std::string(b.name) + "\" is an outbox, not an inbox");
    return static_cast<inbox&>(x);
}

inbox& component::in(box_name b) { return inbox_or_throw(b); }

outbox& component::out(box_name b) {
    box& x = lookup_or_throw(b);
    if (!x.is_outbox()) throw bad_box(name() + ": \"" + std::string(b.name) + "\" is an inbox, not an outbox");
    return static_cast<outbox&>(x);
}

box& component::find_box(box_name b) { return lookup_or_throw(b); }

bool component::has_box(box_name b) const noexcept { return lookup(b) != nullptr; }

void component::declare_inbox(std::string name, std::string description) {
    if (has_box(box_name(std::string_view(name))))
        throw bad_box(this->name() + ": box \"" + name + "\" declared twice");
    add_inbox(std::move(name), std::move(description));
}

void component::declare_outbox(std::string name, std::string description) {
    if (has_box(box_name(std::string_view(name))))
        throw bad_box(this->name() + ": box \"" + name + "\" declared twice");
    add_outbox(std::move(name), std::move(description));
}

namespace {
std::string unique_box_name(const component& c, std::string name) {
    if (!c.has_box(box_name(std::string_view(name)))) return name;
    for (int i = 1;; ++i) {
        std::string n = name + "_" + std::to_string(i);
        if (!c.has_box(box_name(std::string_view(n)))) return n;
    }
}
} // namespace

std::string component::add_inbox(std::string name, std::string description) {
    name = unique_box_name(*this, std::move(name));
    auto& e = ext();
    std::uint32_t h = box_name::fnv1a(name);
    e.boxes.push_back({name, std::move(description), h, std::unique_ptr<box, detail::box_deleter>(new inbox(this))});
    return name;
}

std::string component::add_outbox(std::string name, std::string description) {
    name = unique_box_name(*this, std::move(name));
    auto& e = ext();
    std::uint32_t h = box_name::fnv1a(name);
    e.boxes.push_back({name, std::move(description), h, std::unique_ptr<box, detail::box_deleter>(new outbox())});
    return name;
}

void component::delete_box(std::string_view n) {
    if (!ext_) throw bad_box(name() + " has no run-time box \"" + std::string(n) + "\"");
    auto it = std::find_if(ext_->boxes.begin(), ext_->boxes.end(), [&](auto& e) { return e.name == n; });
    if (it == ext_->boxes.end()) throw bad_box(name() + " has no run-time box \"" + std::string(n) + "\"");
    box* b = it->b.get();
    std::vector<linkage*> doomed;
    for (linkage* l : ext_->links_out)
        if (l->src_ == b) doomed.push_back(l);
    for (linkage* l : ext_->links_in)
        if (l->dst_ == b) doomed.push_back(l);
    for (linkage* l : doomed) unlink(*l);
    if (wait_box_ == b) wait_box_ = nullptr;
    ext_->boxes.erase(it);
}

std::vector<component::box_info> component::boxes() const {
    std::vector<box_info> v;
    auto* self = const_cast<component*>(this);
    v.push_back({"inbox", "default inbox for bulk data", &self->inbox_});
    v.push_back({"control", "secondary inbox for signals", &self->control_});
    v.push_back({"outbox", "default data output", &self->outbox_});
    v.push_back({"signal", "signalling output", &self->signal_});
    if (ext_)
        for (auto& e : ext_->boxes) v.push_back({e.name, e.description, e.b.get()});
    return v;
}

std::string_view component::box_name_of(const box* b) const noexcept {
    if (b == &inbox_) return "inbox";
    if (b == &control_) return "control";
    if (b == &outbox_) return "outbox";
    if (b == &signal_) return "signal";
    if (ext_)
        for (auto& e : ext_->boxes)
            if (e.b.get() == b) return e.name;
    return "?";
}

// ---- receiving ----------------------------------------------------------------

std::optional<message> component::recv_message(box_name b) {
    inbox& ib = inbox_or_throw(b);
    if (ib.empty()) return std::nullopt;
    return ib.pop();
}

std::size_t component::data_ready(box_name b) { return inbox_or_throw(b).size(); }

std::string_view component::any_ready() const noexcept {
    if (!inbox_.empty()) return "inbox";
    if (!control_.empty()) return "control";
    if (ext_)
        for (auto& e : ext_->boxes)
            if (e.b->is_inbox() && !static_cast<inbox*>(e.b.get())->empty()) return e.name;
    return {};
}

// ---- sending ------------------------------------------------------------------

linkage* component::find_linkage(box* src) const noexcept {
    for (const component* c = this; c; c = c->parent_) {
        if (!c->ext_) continue;
        for (linkage* l : c->ext_->links_out)
            if (l->src_ == src) return l;
        for (component* k = c->ext_->first_child; k; k = k->next_sibling_) {
            if (!k->ext_) continue;
            for (linkage* l : k->ext_->links_out)
                if (l->src_ == src) return l;
        }
    }
    return nullptr;
}

component::send_result component::deliver_by_policy(message& m, box& from, inbox* target, delivery_policy p) {
    if (!target) {
        m.reset(); // an unlinked outbox discards, as in Axon
        return send_result::discarded;
    }
    if (!target->full()) {
        target->push_raw(std::move(m));
        ++sent_;
        return send_result::delivered;
    }
    if (target->remote()) return deliver_remote(m, target, p);
    switch (p) {
    case delivery_policy::suspend: return send_result::full;
    case delivery_policy::drop_newest: m.reset(); return send_result::dropped;
    case delivery_policy::drop_oldest:
        target->drop_front();
        target->push_raw(std::move(m));
        ++sent_;
        return send_result::delivered;
    case delivery_policy::fail: {
        // Cut the first link along the chain whose policy is "fail".
        box* b = &from;
        while (b->link() && b->policy() != delivery_policy::fail) b = b->link();
        linkage* l = find_linkage(b);
        if (!l && target->owner()) l = target->owner()->find_linkage(b);
        std::string what = name() + " → " + target->owner()->name() + ": inbox full (" +
                           std::to_string(target->size()) + " messages), link cut";
        spdlog::warn("link failed: {}", what);
        if (l) {
            unlink(*l);
        } else {
            b->clear_link();
        }
        target->owner()->control_.push_forced(message(ipc{ipc_kind::link_failed, what, id_}));
        m.reset();
        return send_result::failed;
    }
    }
    return send_result::failed;
}

// The sender's end of a cross-scheduler link (detail/xlink.hpp): the channel
// applies the policy against the link's credit.
component::send_result component::deliver_remote(message& m, inbox* target, delivery_policy p) {
    auto* port = static_cast<detail::xlink_port*>(target);
    switch (port->push(m, p, false, this)) {
    case detail::xlink_port::result::pushed: ++sent_; return send_result::delivered;
    case detail::xlink_port::result::full: return send_result::full;
    case detail::xlink_port::result::dropped: return send_result::dropped;
    case detail::xlink_port::result::failed: unlink(*port->link); return send_result::failed;
    case detail::xlink_port::result::gone:
        // The receiver has gone: as for a local link, the link goes and the
        // message is discarded.
        unlink(*port->link);
        m.reset();
        return send_result::discarded;
    }
    return send_result::failed;
}

component::send_awaiter component::send_message(message m, box_name b) {
    send_awaiter a(this);
    box& from = lookup_or_throw(b);
    inbox* target = from.final_inbox();
    a.w.msg = std::move(m);
    send_result r = deliver_by_policy(a.w.msg, from, target, from.chain_policy());
    if (r == send_result::full) {
        a.w.target = target;
        a.must_park = true;
    } else {
        a.w.delivered = (r == send_result::delivered || r == send_result::discarded);
    }
    return a;
}

bool component::try_send_message(message& m, box_name b) {
    box& from = lookup_or_throw(b);
    inbox* target = from.final_inbox();
    delivery_policy p = from.chain_policy();
    if (target && target->full() && p == delivery_policy::suspend && !target->remote()) return false;
    send_result r = deliver_by_policy(m, from, target, p);
    return r == send_result::delivered || r == send_result::discarded;
}

void component::send_forced(message m, box_name b) {
    box& from = lookup_or_throw(b);
    if (inbox* target = from.final_inbox()) {
        target->push_forced(std::move(m));
        ++sent_;
    }
}

// ---- awaitables -----------------------------------------------------------------

component::wait_any_awaiter component::wait_any() noexcept { return {this}; }

component::wait_box_awaiter component::wait_for(box_name b) { return {this, &inbox_or_throw(b)}; }

component::timed_wait_awaiter component::wait_for(box_name b, duration timeout) {
    return {this, &inbox_or_throw(b), timeout};
}

component::sleep_awaiter component::sleep_for(duration d) noexcept { return {this, sched_->now() + d}; }

component::sleep_awaiter component::sleep_until(time_point t) noexcept { return {this, t}; }

component::yield_awaiter component::yield() noexcept { return {this}; }

component::done_awaiter component::done() noexcept { return {this}; }

component::event_awaiter component::wait(std::uint8_t events, std::optional<duration> timeout) noexcept {
    return {this, events, timeout};
}

void component::event_awaiter::await_suspend(std::coroutine_handle<> h) {
    std::uint8_t flags = events;
    if (events & ev_control) self->wait_box_ = &self->control_;
    if (timeout) {
        self->arm_timer(self->sched_->now() + *timeout);
        flags |= detail::wait_timer;
    }
    self->suspend_on(flags, h);
}

void component::timed_wait_awaiter::await_suspend(std::coroutine_handle<> h) {
    self->arm_timer(self->sched_->now() + timeout);
    self->wait_box_ = b;
    self->suspend_on(detail::wait_one_box | detail::wait_timer, h);
}

bool component::sleep_awaiter::await_ready() const noexcept { return until <= self->sched_->now(); }

void component::sleep_awaiter::await_suspend(std::coroutine_handle<> h) {
    self->arm_timer(until);
    self->suspend_on(detail::wait_timer, h);
}

void component::arm_timer(time_point t) { sched_->timer_set(this, t); }

// ---- control conventions ------------------------------------------------------

bool component::shutdown_requested() {
    // Take every control message, as control_watch does: anything left on
    // "control" would keep wait_any() ready forever, and an end message
    // behind another one must still be seen. The end message is kept; a
    // later one replaces it only to turn "finish" into "stop now", so a
    // shutdown still cuts a long drain short. Other control messages are
    // dropped (a body that wants them reads "control" before calling this).
    while (!control_.empty()) {
        message m = control_.pop();
        const ipc* c = m.peek<ipc>();
        if (c && c->ends()) {
            if (!(flags_ & detail::flag_shutdown_seen) || (!shutdown_is_stop() && c->stops())) {
                shutdown_kind_ = c->kind;
                if (!c->text.empty() || (ext_ && ext_->rare)) rare().shutdown_text = c->text;
                flags_ |= detail::flag_shutdown_seen;
            }
            continue;
        }
        spdlog::debug("{}: ignored a {} on control", name(), c ? std::string(to_string(c->kind)) : m.type_name());
    }
    if (!(flags_ & detail::flag_shutdown_seen)) return false;
    if (shutdown_is_stop()) return true;
    return inbox_.empty(); // finished: drain the data first
}

ipc_kind component::shutdown_kind() const noexcept {
    return (flags_ & detail::flag_shutdown_seen) ? shutdown_kind_ : ipc_kind::producer_finished;
}

bool component::shutdown_is_stop() const noexcept {
    ipc probe{shutdown_kind(), {}, 0};
    return probe.stops();
}

void component::forward_shutdown() { send_forced(message(ipc{shutdown_kind(), shutdown_text(), id_}), "signal"); }

// ---- life cycle -------------------------------------------------------------------

component& component::activate() {
    if (sched_) return activate(*sched_);
    if (parent_ && parent_->sched_) return activate(*parent_->sched_);
    return activate(scheduler::default_scheduler());
}

component& component::activate(scheduler& s) {
    if (state_ != component_state::created) throw bad_state(name() + " is already activated");
    sched_ = &s;
    task t = main();
    root_ = current_ = t.release();
    state_ = component_state::active;
    ++s.live_;
    if (!parent_) s.add_top(this);
    wake();
    return *this;
}

void component::run() {
    scheduler& s = sched_ ? *sched_ : scheduler::default_scheduler();
    if (state_ == component_state::created) activate(s);
    s.run();
}

void component::stop() noexcept {
    if (state_ != component_state::active) return;
    flags_ |= detail::flag_stop_requested;
    if (sched_->running_ == this) return; // the scheduler finishes it after this resume
    state_ = component_state::finished;
    wait_flags_ = 0;
    sched_->finished(this);
}

void component::destroy_frame() noexcept {
    if (root_) {
        auto r = std::exchange(root_, nullptr);
        current_ = nullptr;
        r.destroy(); // awaiters in the frame unpark themselves
    }
}

void component::detach_from_parent() noexcept {
    if (!parent_) return;
    if (auto* pe = parent_->ext_) {
        // O(1): a server with thousands of connections removes one per close.
        if (prev_sibling_) {
            prev_sibling_->next_sibling_ = next_sibling_;
        } else if (pe->first_child == this) {
            pe->first_child = next_sibling_;
        }
        if (next_sibling_) {
            next_sibling_->prev_sibling_ = prev_sibling_;
        } else if (pe->last_child == this) {
            pe->last_child = prev_sibling_;
        }
    }
    parent_ = nullptr;
    next_sibling_ = prev_sibling_ = nullptr;
}

void component::remove_links() noexcept { unlink_all(*this); }

void component::finish_links_and_children() noexcept {
    if (ext_) {
        while (component* c = ext_->first_child) {
            c->detach_from_parent();
            c->teardown(); // the frame goes while the derived object is whole
            delete c;
        }
    }
    remove_links();
}

void component::absorb_all_waiters() {
    inbox_.absorb_waiters();
    control_.absorb_waiters();
    if (ext_)
        for (auto& e : ext_->boxes)
            if (e.b->is_inbox()) static_cast<inbox*>(e.b.get())->absorb_waiters();
}

void component::release_all_waiters() noexcept {
    inbox_.release_waiters();
    control_.release_waiters();
    if (ext_)
        for (auto& e : ext_->boxes)
            if (e.b->is_inbox()) static_cast<inbox*>(e.b.get())->release_waiters();
}

void component::teardown() noexcept {
    if (sched_) {
        sched_->services().deregister_all(*this);
        // Active, or finished and not reaped yet (stopped, then destroyed
        // before the scheduler got to it): still counted as live.
        if (state_ == component_state::active || state_ == component_state::finished) --sched_->live_;
        sched_->dequeue_everywhere(this);
        // A reaped top-level component has already left the list.
        if (!parent_ && (state_ == component_state::active || state_ == component_state::finished))
            sched_->remove_top(this);
        if (ext_ && ext_->heap_index != static_cast<std::size_t>(-1)) sched_->timer_remove(this);
    }
    destroy_frame();
    finish_links_and_children();
    detach_from_parent();
    release_all_waiters();
    state_ = component_state::reaped;
    delete std::exchange(ext_, nullptr);
}

void component::remove_child(component& c) {
    if (c.parent_ != this) throw bad_component(c.name() + " is not a child of " + name());
    c.detach_from_parent();
    c.teardown(); // the frame goes while the derived object is whole
    delete &c;
}

bool component::children_done() {
    if (!ext_) return true;
    component* c = ext_->first_child;
    while (c) {
        component* next = c->next_sibling_;
        if (c->finished()) remove_child(*c);
        c = next;
    }
    return ext_->first_child == nullptr;
}

std::vector<component*> component::children() const {
    std::vector<component*> v;
    if (ext_)
        for (component* c = ext_->first_child; c; c = c->next_sibling_) v.push_back(c);
    return v;
}

// ---- links ------------------------------------------------------------------------

linkage& component::link(endpoint src, endpoint dst, delivery_policy p) {
    box& s = src.comp->lookup_or_throw(src.name);
    box& d = dst.comp->lookup_or_throw(dst.name);
    if (s.is_inbox() && d.is_outbox())
        throw bad_box("cannot link inbox " + src.comp->name() + "." + std::string(src.name.name) + " to outbox " +
                      dst.comp->name() + "." + std::string(dst.name.name));
    if (s.link())
        throw box_already_linked(src.comp->name() + "." + std::string(src.name.name) +
                                 " is already linked; a box has one outgoing link (use a splitter to fan out)");
    for (box* b = &d; b; b = b->link())
        if (b == &s)
            throw bad_state("linking " + src.comp->name() + "." + std::string(src.name.name) + " would make a loop");
    scheduler* ss = src.comp->sched_;
    scheduler* ds = dst.comp->sched_;
    linkage* l;
    if (ss && ds && ss != ds) {
        // Across schedulers: S links to a port, a pump on D's scheduler
        // delivers (detail/xlink.hpp). The linkage lives on the source's side
        // only; nothing here keeps a pointer into the other thread's graph.
        if (!d.is_inbox())
            throw bad_box("a cross-scheduler link ends at an inbox: " + dst.comp->name() + "." +
                          std::string(dst.name.name) + " is an outbox");
        if (!ss->touchable() || !ds->touchable())
            throw bad_state("linking " + src.comp->name() + " to " + dst.comp->name() +
                            " across schedulers: link before the schedulers run, or from a thread that runs both");
        l = new linkage(src.comp, &s, src.comp, nullptr);
        try {
            l->port_ = detail::xlink_open(*src.comp, *dst.comp, static_cast<inbox&>(d), p);
        } catch (...) {
            delete l;
            throw;
        }
        l->port_->link = l;
        l->port_->sink_id = dst.comp->id();
        l->port_->sink_box = std::string(dst.name.name);
        l->dst_ = l->port_;
        s.set_link(l->port_, p);
        src.comp->ext().links_out.push_back(l);
    } else {
        l = new linkage(src.comp, &s, dst.comp, &d);
        s.set_link(&d, p);
        src.comp->ext().links_out.push_back(l);
        dst.comp->ext().links_in.push_back(l);
    }
    // Messages already waiting in a box that becomes a link source move on.
    if (s.is_inbox()) {
        auto& ib = static_cast<inbox&>(s);
        if (inbox* fin = s.final_inbox()) {
            while (!ib.empty()) fin->push_forced(ib.pop());
            if (ib.ring_) {
                while (detail::send_waiter* w = ib.ring_->waiters_head) {
                    ib.ring_->waiters_head = w->next;
                    --ib.ring_->parked;
                    fin->push_forced(std::move(w->msg));
                    w->delivered = true;
                    w->target = nullptr;
                    w->sender->wake();
                }
                ib.ring_->waiters_tail = nullptr;
            }
        }
    }
    return *l;
}

void component::unlink(linkage& l) {
    l.src_->clear_link();
    auto drop = [&](std::vector<linkage*>& v) { v.erase(std::remove(v.begin(), v.end(), &l), v.end()); };
    if (l.src_owner_->ext_) drop(l.src_owner_->ext_->links_out);
    if (l.dst_owner_->ext_) drop(l.dst_owner_->ext_->links_in);
    delete l.port_; // parked senders go free; messages in transit still arrive
    delete &l;
}

void component::unlink_all(component& c) {
    if (!c.ext_) return;
    while (!c.ext_->links_out.empty()) unlink(*c.ext_->links_out.back());
    while (!c.ext_->links_in.empty()) unlink(*c.ext_->links_in.back());
}

std::vector<linkage*> component::links() const {
    std::vector<linkage*> v;
    if (ext_) {
        v = ext_->links_out;
        v.insert(v.end(), ext_->links_in.begin(), ext_->links_in.end());
    }
    return v;
}

namespace detail {

void on_task_final(component* c) noexcept {
    if (!c) return;
    c->state_ = component_state::finished;
    c->wait_flags_ = 0;
    c->sched_->finished(c);
}

void set_current(component* c, std::coroutine_handle<> h) noexcept {
    if (c) c->current_ = h;
}

} // namespace detail

} // namespace kamaelia
