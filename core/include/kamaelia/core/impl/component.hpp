// The inline bodies of kamaelia/core/component.hpp: the awaiters and the
// hot paths (send, recv, wake-ups). Included at the end of component.hpp;
// not meant to be included on its own.
#pragma once

namespace kamaelia {

// ---- awaiters ---------------------------------------------------------

struct [[nodiscard]] component::send_awaiter {
    component* self;
    detail::send_waiter w;
    bool must_park = false; // the receiver is full: wait for room
    bool parked = false;

    bool await_ready() const noexcept { return !must_park; }
    void await_suspend(std::coroutine_handle<> h) noexcept {
        w.sender = self;
        w.target->park(&w); // the awaiter is at its final address in the frame now
        parked = true;
        self->suspend_on(detail::wait_send, h);
    }
    // True if the message reached the inbox; false if it was dropped by
    // policy, the receiver went away while this sender waited, or a
    // shutdown_microprocess arrived on the sender's control meanwhile (the
    // message is then not sent).
    bool await_resume() noexcept {
        if (parked && w.target) w.target->unpark(&w); // woken by a stop, not by room
        parked = false;
        return w.delivered;
    }

    explicit send_awaiter(component* c) noexcept : self(c) {}
    send_awaiter(send_awaiter&& o) noexcept : self(o.self), must_park(o.must_park) {
        w.msg = std::move(o.w.msg);
        w.target = o.w.target;
        w.delivered = o.w.delivered;
    }
    ~send_awaiter() {
        if (parked && w.target) w.target->unpark(&w);
    }
};

struct component::wait_any_awaiter {
    component* self;
    // An end message already taken from "control" counts as ready, so the
    // canonical loop re-checks shutdown_requested() instead of sleeping.
    bool await_ready() const noexcept {
        return (self->flags_ & detail::flag_shutdown_seen) || !self->any_ready().empty();
    }
    void await_suspend(std::coroutine_handle<> h) noexcept { self->suspend_on(detail::wait_any_inbox, h); }
    void await_resume() const noexcept {}
};

struct component::wait_box_awaiter {
    component* self;
    inbox* b;
    bool await_ready() const noexcept { return !b->empty(); }
    void await_suspend(std::coroutine_handle<> h) noexcept {
        self->wait_box_ = b;
        self->suspend_on(detail::wait_one_box, h);
    }
    void await_resume() const noexcept {}
};

struct component::timed_wait_awaiter {
    component* self;
    inbox* b;
    duration timeout;
    bool await_ready() const noexcept { return !b->empty() || timeout <= duration::zero(); }
    void await_suspend(std::coroutine_handle<> h);
    bool await_resume() const noexcept { return !b->empty(); }
};

struct component::sleep_awaiter {
    component* self;
    time_point until;
    bool await_ready() const noexcept;
    void await_suspend(std::coroutine_handle<> h);
    void await_resume() const noexcept {}
};

struct component::yield_awaiter {
    component* self;
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) noexcept {
        self->current_ = h;
        self->wait_flags_ = detail::wait_other;
        self->wake();
    }
    void await_resume() const noexcept {}
};

struct component::done_awaiter {
    component* child;
    bool await_ready() const noexcept { return child->finished(); }
    template <class P>
    void await_suspend(std::coroutine_handle<P> h) {
        component* waiter = detail::component_of(h);
        if (!waiter || waiter != child->parent_)
            throw bad_state("done(): only the parent of " + child->name() + " can await it");
        child->flags_ |= detail::flag_parent_waits;
        waiter->suspend_on(detail::wait_other, h);
    }
    void await_resume() const noexcept {}
};

struct component::event_awaiter {
    component* self;
    std::uint8_t events;
    std::optional<duration> timeout;
    bool ready_now() const noexcept {
        if ((events & ev_external) && (self->flags_ & detail::flag_external)) return true;
        if ((events & ev_inbox) && ((self->flags_ & detail::flag_shutdown_seen) || !self->any_ready().empty()))
            return true;
        if ((events & ev_control) && !self->control_.empty()) return true;
        return (events & ev_children) && (self->flags_ & detail::flag_child_done);
    }
    bool await_ready() const noexcept { return ready_now() || (timeout && *timeout <= duration::zero()); }
    void await_suspend(std::coroutine_handle<> h);
    // True when an awaited event is there, false when only the time ran out.
    bool await_resume() noexcept {
        bool r = ready_now();
        if (events & ev_external) self->flags_ &= ~detail::flag_external;
        if (events & ev_children) self->flags_ &= ~detail::flag_child_done;
        return r;
    }
};

// ---- inline hot paths ----------------------------------------------------

inline void component::signal_external() noexcept {
    if (state_ != component_state::active) return;
    if (wait_flags_ & detail::wait_external) {
        wake();
    } else {
        flags_ |= detail::flag_external;
    }
}

inline void component::suspend_on(std::uint8_t flags, std::coroutine_handle<> h) noexcept {
    wait_flags_ = flags;
    current_ = h;
}

inline void component::notify_data(inbox* b) noexcept {
    if ((wait_flags_ & detail::wait_any_inbox) || ((wait_flags_ & detail::wait_one_box) && wait_box_ == b)) {
        wake();
    } else {
        notify_parked_sender(b, b->front());
    }
}

inline void component::notify_parked_sender(inbox* b, const message& m) noexcept {
    if ((wait_flags_ & detail::wait_send) && b == &control_) {
        const ipc* c = m.peek<ipc>();
        if (c && c->stops()) wake();
    }
}

inline void component::child_finished(component* c) noexcept {
    flags_ |= detail::flag_child_done;
    if (ext_) ++ext_->children_finished;
    if ((wait_flags_ & detail::wait_child) || (c->flags_ & detail::flag_parent_waits)) wake();
}

inline void component::wake() noexcept {
    wait_flags_ = 0;
    if (!(flags_ & detail::flag_queued)) {
        flags_ |= detail::flag_queued;
        sched_->enqueue(this);
    }
}

// ---- ----------------------------------------------------

// recv<T> for a fast_payload T on "inbox": the slot's vtable pointer is
// compared with T's inline one once, the value copied out, the slot left
// empty. `done` is false when the general path must decide (a shared or
// boxed payload, a type mismatch, which it reports as before).
template <class T>
KAMAELIA_ALWAYS_INLINE std::optional<T> component::recv_fast(bool& done) noexcept {
    done = true;
    if constexpr (detail::fast_payload<T>) {
        detail::ring* r = inbox_.ring_;
        if (!r || r->size == 0) return std::nullopt;
        message& slot = r->slots[r->head];
        if (detail::message_access::holds_inline<T>(slot)) {
            T v = detail::message_access::take_fast<T>(slot);
            r->head = (r->head + 1) & r->mask;
            --r->size;
            if (r->waiters_head) [[unlikely]]
                inbox_.refill();
            return v;
        }
    }
    done = false;
    return std::nullopt;
}

template <class T>
KAMAELIA_ALWAYS_INLINE std::optional<T> component::recv() {
    bool done;
    std::optional<T> v = recv_fast<T>(done);
    if (done) return v;
    return recv_general<T>("inbox");
}

template <class T>
KAMAELIA_ALWAYS_INLINE std::optional<T> component::recv(box_name b) {
    if (b.hash == inbox_hash && b.name == "inbox") return recv<T>();
    return recv_general<T>(b);
}

template <class T>
[[gnu::noinline]] std::optional<T> component::recv_general(box_name b) {
    inbox& ib = (b.hash == inbox_hash && b.name == "inbox") ? inbox_ : inbox_or_throw(b);
    if (ib.empty()) return std::nullopt;
    if constexpr (detail::is_shared_v<T>) {
        using U = typename T::element_type;
        const message& m = ib.front();
        if (!m.holds<U>()) m.throw_mismatch<T>();
        return ib.pop().template take_shared<U>();
    } else if constexpr (std::is_same_v<T, message>) {
        return ib.pop();
    } else {
        const message& m = ib.front();
        if (!m.holds<T>()) m.throw_mismatch<T>();
        return ib.pop().template take<T>();
    }
}

// The fast path of send and try_send on "outbox": a fast_payload into a
// local inbox with room is built straight in its slot. False: nothing was
// done (a full, remote or unallocated inbox, no link), and the general path
// decides.
template <class T, class V>
KAMAELIA_ALWAYS_INLINE bool component::send_fast(V& v) noexcept {
    if constexpr (detail::fast_payload<T>) {
        inbox* target = outbox_.final_inbox();
        if (target && target->emplace_fast<T>(static_cast<V&&>(v))) {
            ++sent_;
            return true;
        }
    }
    return false;
}

template <class V>
KAMAELIA_ALWAYS_INLINE component::send_awaiter component::send(V&& v) {
    if (send_fast<std::remove_cvref_t<V>>(v)) {
        send_awaiter a(this);
        a.w.delivered = true;
        return a;
    }
    return send_general(std::forward<V>(v), "outbox");
}

template <class V>
KAMAELIA_ALWAYS_INLINE component::send_awaiter component::send(V&& v, box_name b) {
    if (b.hash == outbox_hash && b.name == "outbox") return send(std::forward<V>(v));
    return send_general(std::forward<V>(v), b);
}

template <class V>
[[gnu::noinline]] component::send_awaiter component::send_general(V&& v, box_name b) {
    send_awaiter a(this);
    box& from = (b.hash == outbox_hash && b.name == "outbox") ? static_cast<box&>(outbox_) : lookup_or_throw(b);
    inbox* target = from.final_inbox();
    if (target && !target->full()) {
        target->push_raw(message(std::forward<V>(v)));
        ++sent_;
        a.w.delivered = true;
        return a;
    }
    a.w.msg = message(std::forward<V>(v));
    send_result r = deliver_by_policy(a.w.msg, from, target, from.chain_policy());
    if (r == send_result::full) {
        a.w.target = target;
        a.must_park = true;
    } else {
        a.w.delivered = (r == send_result::delivered || r == send_result::discarded);
    }
    return a;
}

template <class V>
KAMAELIA_ALWAYS_INLINE bool component::try_send(V&& v) {
    if (send_fast<std::remove_cvref_t<V>>(v)) return true;
    return try_send_general(std::forward<V>(v), "outbox");
}

template <class V>
KAMAELIA_ALWAYS_INLINE bool component::try_send(V&& v, box_name b) {
    if (b.hash == outbox_hash && b.name == "outbox") return try_send(std::forward<V>(v));
    return try_send_general(std::forward<V>(v), b);
}

template <class V>
[[gnu::noinline]] bool component::try_send_general(V&& v, box_name b) {
    box& from = (b.hash == outbox_hash && b.name == "outbox") ? static_cast<box&>(outbox_) : lookup_or_throw(b);
    inbox* target = from.final_inbox();
    if (target && !target->full()) {
        target->push_raw(message(std::forward<V>(v)));
        ++sent_;
        return true;
    }
    if (target && from.chain_policy() == delivery_policy::suspend && !target->remote()) return false;
    message m(std::forward<V>(v));
    send_result r = deliver_by_policy(m, from, target, from.chain_policy());
    return r == send_result::delivered || r == send_result::discarded;
}

template <class C>
C& component::add_child(std::unique_ptr<C> c) {
    if (!c) throw bad_component("add_child: null component");
    if (c->parent_) throw bad_state("add_child: " + c->name() + " already has a parent");
    C& ref = *c;
    component* raw = c.release();
    raw->parent_ = this;
    auto& e = ext();
    // Append, keeping creation order (chassis rely on it for naming and wiring).
    raw->prev_sibling_ = e.last_child;
    if (e.last_child) {
        e.last_child->next_sibling_ = raw;
    } else {
        e.first_child = raw;
    }
    e.last_child = raw;
    return ref;
}

inline void inbox::push_raw(message&& m) {
    if (!ring_ || ring_->size > ring_->mask) grow();
    detail::ring& r = *ring_;
    message& slot = r.slots[(r.head + r.size) & r.mask];
    slot = std::move(m);
    ++r.delivered;
    if (++r.size == 1) {
        owner_->notify_data(this);
    } else if (owner_->wait_flags_ & detail::wait_send) {
        owner_->notify_parked_sender(this, slot);
    }
}

inline message inbox::pop() {
    detail::ring& r = *ring_;
    message m = std::move(r.slots[r.head]);
    r.head = (r.head + 1) & r.mask;
    --r.size;
    if (r.waiters_head) refill();
    return m;
}

// A fast_payload is never an ipc, so unlike push_raw there is no parked
// sender to tell about a "stop now" arriving on its control box.
template <class T, class V>
KAMAELIA_ALWAYS_INLINE bool inbox::emplace_fast(V&& v) noexcept {
    static_assert(!std::is_same_v<T, ipc>);
    detail::ring* r = ring_;
    // A remote port's limit is 0: it never has room here.
    if (!r || r->size >= r->limit || r->size > r->mask) return false;
    detail::message_access::construct_fast<T>(r->slots[(r->head + r->size) & r->mask], std::forward<V>(v));
    ++r->delivered;
    if (++r->size == 1) owner_->notify_data(this);
    return true;
}

} // namespace kamaelia
