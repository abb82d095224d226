#include "thread_bridge.hpp"

#include <spdlog/spdlog.h>

#include <utility>

namespace kamaelia::detail {

// ---- thread_bridge -------------------------------------------------------------

bridge_queue& thread_bridge::in_queue(box_name b, const std::string& who) {
    if (bridge_queue* q = find(to_foreign, b)) return *q;
    throw bad_box(who + " has no inbox \"" + std::string(b.name) + "\" to receive from");
}

bridge_queue& thread_bridge::out_queue(box_name b, const std::string& who) {
    if (bridge_queue* q = find(from_foreign, b)) return *q;
    throw bad_box(who + " has no outbox \"" + std::string(b.name) + "\" to send to");
}

void thread_bridge::wake_proxy_locked() {
    if (wake_posted || !sched) return;
    wake_posted = true;
    // Posting with the mutex held: whoever clears `sched` (the proxy going,
    // on the scheduler thread) takes the mutex first, so the scheduler is
    // alive for the whole post.
    sched->post([self = shared_from_this()] { self->on_wake(); });
}

void thread_bridge::on_wake() {
    {
        std::lock_guard<std::mutex> lk(mutex);
        wake_posted = false; // cleared before the proxy looks: later changes post again
    }
    if (wake_box && wake_box->empty()) detail::inbox_access::push_forced(*wake_box, message(bridge_wake_token{}));
}

void thread_bridge::push_out_locked(bridge_queue& q, message m, bool forced) {
    bool was_empty = q.items.empty();
    q.items.push_back(bridge_item{std::move(m), next_seq++, forced});
    if (was_empty) wake_proxy_locked();
}

message thread_bridge::pop_in_locked(bridge_queue& q) {
    bool was_full = q.full();
    message m = std::move(q.items.front().msg);
    q.items.pop_front();
    if (was_full) wake_proxy_locked(); // the proxy may be holding data back
    return m;
}

// ---- bridge_pump ------------------------------------------------------------------

bridge_pump::bridge_pump(component& self, std::shared_ptr<thread_bridge> b, inbox& wake_box)
    : self_(self),
      b_(std::move(b)),
      wake_(wake_box) {
    b_->wake_box = &wake_;
}

bridge_pump::~bridge_pump() {
    b_->wake_box = nullptr;
    // Parked sends withdraw themselves (send_awaiter's destructor) as outs_ goes.
}

void bridge_pump::add_inbound(inbox& real, std::size_t queue, bool last) { ins_.push_back({&real, queue, last}); }

void bridge_pump::add_outbound(std::string outbox_name, std::size_t queue, bool last) {
    outs_.push_back(out_route{std::move(outbox_name), queue, last, std::nullopt, false, 0});
}

void bridge_pump::move_in(in_route& r, bool& stalled, bool& moved, bool ignore_limit) {
    bridge_queue& q = b_->to_foreign[r.q];
    while (!r.real->empty()) {
        if (!ignore_limit && q.full()) {
            stalled = true; // the foreign side pops from a full queue → wake
            return;
        }
        message m = r.real->pop(); // may hand a parked upstream sender's message in
        try {
            m.detach(); // the message crosses to another thread
        } catch (const std::exception& e) {
            spdlog::error("{}: message on \"{}\" dropped: {}", self_.name(), q.name, e.what());
            continue;
        }
        q.items.push_back(bridge_item{std::move(m), 0, false});
        moved = true;
    }
}

bool bridge_pump::settle_pending(out_route& r) {
    if (!r.pending) return true;
    if (r.registered) {
        if (r.pending->w.target) return false; // still parked: room has not appeared
        r.pending.reset();                     // delivered (or the receiver went away)
        r.registered = false;
        return true;
    }
    // Built but never parked (the proxy did not suspend): try it again.
    message m = std::move(r.pending->w.msg);
    std::uint64_t seq = r.pending_seq;
    r.pending.reset();
    return submit(r, std::move(m), seq);
}

bool bridge_pump::submit(out_route& r, message m, std::uint64_t seq) {
    r.pending.emplace(self_.send_message(std::move(m), box_name(std::string_view(r.name))));
    if (r.pending->must_park) {
        r.pending_seq = seq;
        r.registered = false;
        return false;
    }
    r.pending.reset(); // delivered, or dropped by the link's policy
    return true;
}

bool bridge_pump::older_data_waiting(std::uint64_t seq) const {
    for (const out_route& r : outs_) {
        if (r.last) continue;
        if (r.pending && r.pending_seq < seq) return true;
        const bridge_queue& q = b_->from_foreign[r.q];
        if (!q.items.empty() && q.items.front().seq < seq) return true;
    }
    return false;
}

void bridge_pump::step() {
    while (!wake_.empty()) wake_.pop();

    std::unique_lock<std::mutex> lk(b_->mutex);
    bool stalled = false, moved = false;
    for (auto& r : ins_)
        if (!r.last) move_in(r, stalled, moved, false);
    if (!stalled) {
        // Control-class boxes only after every data box drained in this pass.
        for (auto& r : ins_)
            if (r.last) move_in(r, stalled, moved, false);
    }

    bool popped = false;
    for (int pass = 0; pass < 2; ++pass) {
        for (auto& r : outs_) {
            if (r.last != (pass == 1)) continue;
            if (!settle_pending(r)) continue;
            bridge_queue& q = b_->from_foreign[r.q];
            while (!q.items.empty()) {
                if (r.last && older_data_waiting(q.items.front().seq)) break;
                bridge_item it = std::move(q.items.front());
                q.items.pop_front();
                popped = true;
                if (it.forced) {
                    self_.send_forced(std::move(it.msg), box_name(std::string_view(r.name)));
                    continue;
                }
                if (!submit(r, std::move(it.msg), it.seq)) break; // parks until room appears
            }
        }
    }
    b_->unlock_and_notify(lk, moved || popped);
}

void bridge_pump::flush_inbound() {
    std::unique_lock<std::mutex> lk(b_->mutex);
    bool stalled = false, moved = false;
    for (auto& r : ins_)
        if (!r.last) move_in(r, stalled, moved, true);
    for (auto& r : ins_)
        if (r.last) move_in(r, stalled, moved, true);
    b_->unlock_and_notify(lk, moved);
}

bool bridge_pump::outbound_idle() {
    std::lock_guard<std::mutex> lk(b_->mutex);
    for (auto& r : outs_)
        if (r.pending || !b_->from_foreign[r.q].items.empty()) return false;
    return true;
}

bool bridge_pump::wait_awaiter::await_ready() const noexcept {
    if (!p->wake_.empty()) return true;
    if (children) {
        for (component* c : p->self_.children())
            if (c->finished()) return true;
    }
    return false;
}

void bridge_pump::wait_awaiter::await_suspend(std::coroutine_handle<> h) noexcept {
    // Park every send that is waiting for room; any one of them, a wake
    // token or fresh inbound data resumes the proxy.
    for (auto& r : p->outs_) {
        if (r.pending && !r.registered) {
            r.pending->await_suspend(h);
            r.registered = true;
        }
    }
    if (children) {
        p->self_.wait(component::ev_inbox | component::ev_children).await_suspend(h);
    } else {
        p->self_.wait_any().await_suspend(h);
    }
}

} // namespace kamaelia::detail
