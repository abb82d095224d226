#include <kamaelia/core/threaded_component.hpp>

#include "thread_bridge.hpp"

#include <spdlog/spdlog.h>

namespace kamaelia {

namespace {

constexpr std::string_view wake_box_name = "_wake";

// Stops and joins a bridge's thread. `interrupt(arg)` reaches code blocked
// outside our waits; it is only called while the thread still runs, which
// means the owner is alive (its destructor joins before anything else goes).
void stop_and_join(detail::thread_bridge& b, void (*interrupt)(void*), void* arg) noexcept {
    if (!b.thread.joinable()) return;
    {
        std::lock_guard<std::mutex> lk(b.mutex);
        b.closed = true;
        b.cv.notify_all();
    }
    interrupt(arg);
    b.thread.join();
    std::lock_guard<std::mutex> lk(b.mutex);
    b.sched = nullptr; // nothing may post to the scheduler any more
}

// Lives in the proxy's frame: starts the thread, and stops and joins it
// whenever the frame goes (the body ending, stop(), teardown).
class thread_guard {
public:
    thread_guard(detail::thread_bridge& b, threaded_component& owner, void (*entry)(threaded_component*),
                 void (*interrupt)(void*))
        : b_(b),
          owner_(owner),
          interrupt_(interrupt) {
        b_.thread = std::thread(entry, &owner);
    }
    ~thread_guard() {
        stop_and_join(b_, interrupt_, &owner_);
        // What the thread never took goes now, not when the object is
        // deleted: a request among it is answered service_ended at once.
        std::vector<detail::bridge_item> left;
        {
            std::lock_guard<std::mutex> lk(b_.mutex);
            for (auto& q : b_.to_foreign) {
                for (auto& i : q.items) left.push_back(std::move(i));
                q.items.clear();
            }
        }
    }
    thread_guard(const thread_guard&) = delete;
    thread_guard& operator=(const thread_guard&) = delete;

private:
    detail::thread_bridge& b_;
    threaded_component& owner_;
    void (*interrupt_)(void*);
};

} // namespace

threaded_component::threaded_component(std::size_t queue_limit)
    : bridge_(std::make_shared<detail::thread_bridge>()),
      limit_(queue_limit ? queue_limit : 1) {
    declare_inbox(std::string(wake_box_name), "wake-ups from the component's thread (internal)");
}

threaded_component::~threaded_component() { stop_thread(); }

void threaded_component::stop_thread() noexcept {
    // The frame normally stops the thread; this covers a component deleted
    // while it runs (members must outlive the thread).
    stop_and_join(*bridge_, &interrupt_thunk, this);
}

task threaded_component::main() {
    // Children added before activation (a pool's workers, built and linked
    // in the constructor) start with it: main() is this proxy, so a derived
    // class has nowhere else to activate them.
    for (component* c : children())
        if (c->state() == component_state::created) c->activate(*sched());
    std::shared_ptr<detail::thread_bridge> b = bridge_;
    inbox& wake = in(box_name(wake_box_name));
    detail::bridge_pump pump(*this, b, wake);
    {
        std::lock_guard<std::mutex> lk(b->mutex);
        b->sched = sched();
        b->to_foreign.clear();
        b->from_foreign.clear();
        for (const auto& info : boxes()) {
            if (info.name == wake_box_name) continue;
            std::string n(info.name);
            if (info.b->is_inbox()) {
                bool last = (n == "control");
                pump.add_inbound(static_cast<inbox&>(*info.b), b->to_foreign.size(), last);
                b->to_foreign.push_back(detail::bridge_queue(n, last, limit_));
            } else {
                bool last = (n == "signal");
                pump.add_outbound(n, b->from_foreign.size(), last);
                b->from_foreign.push_back(detail::bridge_queue(n, last, limit_));
            }
        }
    }
    thread_guard guard(
        *b, *this, [](threaded_component* self) { self->thread_entry(); }, &interrupt_thunk);

    for (;;) {
        pump.step();
        bool done;
        {
            std::lock_guard<std::mutex> lk(b->mutex);
            done = b->foreign_done;
        }
        // Once the thread has returned, end after delivering what it sent.
        if (done && pump.outbound_idle()) break;
        auto w = pump.wait();
        co_await w;
    }
    std::exception_ptr error;
    {
        std::lock_guard<std::mutex> lk(b->mutex);
        error = b->error;
    }
    // Reported like any component failure (logged, component_error on signal).
    if (error) std::rethrow_exception(error);
}

void threaded_component::thread_entry() noexcept {
    detail::thread_bridge& b = *bridge_;
    std::exception_ptr error;
    try {
        thread_main();
    } catch (const thread_stopped&) {
        // stopped from outside: a quiet end
    } catch (...) {
        error = std::current_exception();
    }
    std::lock_guard<std::mutex> lk(b.mutex);
    b.error = error;
    b.foreign_done = true;
    b.wake_proxy_locked();
}

// ---- thread side ----------------------------------------------------------------

std::optional<message> threaded_component::pop(box_name bn, check_fn check, bool block, duration timeout) {
    detail::thread_bridge& b = *bridge_;
    std::unique_lock<std::mutex> lk(b.mutex);
    detail::bridge_queue& q = b.in_queue(bn, name());
    if (q.items.empty()) {
        if (!block) return std::nullopt;
        if (b.closed) throw thread_stopped(name() + " is stopping");
        bool ok = b.wait_locked(lk, timeout, [&] { return b.closed || !q.items.empty(); });
        if (q.items.empty()) {
            if (b.closed) throw thread_stopped(name() + " is stopping");
            if (!ok) return std::nullopt;
        }
    }
    if (check) check(q.items.front().msg); // a wrong type throws and leaves the message queued
    return b.pop_in_locked(q);
}

std::optional<message> threaded_component::recv_message(box_name b) { return pop(b, nullptr, false, duration::zero()); }

std::optional<message> threaded_component::recv_message_wait(box_name b, duration timeout) {
    return pop(b, nullptr, true, timeout);
}

std::size_t threaded_component::data_ready(box_name bn) {
    detail::thread_bridge& b = *bridge_;
    std::lock_guard<std::mutex> lk(b.mutex);
    if (detail::bridge_queue* q = b.find(b.to_foreign, bn)) return q->items.size();
    if (b.to_foreign.empty()) return 0; // the proxy has not built the queues yet
    throw bad_box(name() + " has no inbox \"" + std::string(bn.name) + "\" to receive from");
}

bool threaded_component::wait(duration timeout) {
    detail::thread_bridge& b = *bridge_;
    std::unique_lock<std::mutex> lk(b.mutex);
    auto ready = [&] {
        if (b.shutdown_seen) return true;
        for (auto& q : b.to_foreign)
            if (!q.items.empty()) return true;
        return false;
    };
    if (ready()) return true;
    if (b.closed) throw thread_stopped(name() + " is stopping");
    b.wait_locked(lk, timeout, [&] { return b.closed || ready(); });
    if (ready()) return true;
    if (b.closed) throw thread_stopped(name() + " is stopping");
    return false;
}

void threaded_component::send_message(message m, box_name bn) {
    m.detach(); // the message crosses to the scheduler thread
    detail::thread_bridge& b = *bridge_;
    std::unique_lock<std::mutex> lk(b.mutex);
    detail::bridge_queue& q = b.out_queue(bn, name());
    if (q.full() && !b.closed) b.wait_locked(lk, forever, [&] { return b.closed || !q.full(); });
    if (b.closed) throw thread_stopped(name() + " is stopping");
    b.push_out_locked(q, std::move(m), false);
}

bool threaded_component::try_send_message(message& m, box_name bn) {
    detail::thread_bridge& b = *bridge_;
    std::lock_guard<std::mutex> lk(b.mutex);
    detail::bridge_queue& q = b.out_queue(bn, name());
    if (q.full() || b.closed) return false;
    m.detach();
    b.push_out_locked(q, std::move(m), false);
    return true;
}

void threaded_component::send_forced(message m, box_name bn) {
    m.detach();
    detail::thread_bridge& b = *bridge_;
    std::lock_guard<std::mutex> lk(b.mutex);
    detail::bridge_queue& q = b.out_queue(bn, name());
    if (b.closed) return; // nobody left to deliver it
    b.push_out_locked(q, std::move(m), true);
}

bool threaded_component::shutdown_requested() {
    detail::thread_bridge& b = *bridge_;
    std::lock_guard<std::mutex> lk(b.mutex);
    if (b.closed) return true;
    // component::shutdown_requested()'s rule: take every control message, so
    // the loop never stalls (or spins in wait()) behind one it does not
    // understand; keep the end message, and let a later stop turn a finish
    // into a stop.
    if (detail::bridge_queue* cq = b.find(b.to_foreign, "control")) {
        while (!cq->items.empty()) {
            message m = b.pop_in_locked(*cq);
            const ipc* c = m.peek<ipc>();
            if (!c || !c->ends()) continue;
            ipc seen{b.shutdown_kind, {}, 0};
            if (!b.shutdown_seen || (!seen.stops() && c->stops())) {
                b.shutdown_kind = c->kind;
                b.shutdown_seen = true;
            }
        }
    }
    if (!b.shutdown_seen) return false;
    ipc probe{b.shutdown_kind, {}, 0};
    if (probe.stops()) return true;
    detail::bridge_queue* iq = b.find(b.to_foreign, "inbox");
    return !iq || iq->items.empty(); // finished: drain the data first
}

ipc_kind threaded_component::shutdown_kind() {
    detail::thread_bridge& b = *bridge_;
    std::lock_guard<std::mutex> lk(b.mutex);
    return b.shutdown_seen ? b.shutdown_kind : ipc_kind::producer_finished;
}

bool threaded_component::shutdown_is_stop() {
    ipc probe{shutdown_kind(), {}, 0};
    return probe.stops();
}

void threaded_component::forward_shutdown() { send_forced(message(ipc{shutdown_kind(), {}, id()}), "signal"); }

bool threaded_component::stop_requested() const {
    std::lock_guard<std::mutex> lk(bridge_->mutex);
    return bridge_->closed;
}

} // namespace kamaelia
