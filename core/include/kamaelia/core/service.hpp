// Services, reached by request/reply: ask a service by name and co_await
// its answer (Kamaelia's services registry, the CAT, with a reply path).
//
//   struct check { triplet t; using reply_type = decision; };
//
//   // the asker, any component's coroutine:
//   check c{t};
//   auto d = co_await ask("greylist", std::move(c));              // waits while the service is full
//   auto e = co_await ask("greylist", std::move(c2), within(2s)); // ... or a timeout error
//   if (!d) log(d.error().text); else act(*d);
//
//   // the service, an ordinary component (or a threaded_component for
//   // blocking work) registered with sched.services().register_service():
//   while (auto r = recv<request<check>>())           // many per wake-up: group commit
//       r->reply(decide(r->body));
//
// Contract:
//  - bounded: the request goes into the service's inbox, whose bound holds;
//    a full service suspends the asker, or fails fast with ask_options.
//  - every request is answered exactly once: reply(), fail(), or - when the
//    request is destroyed unanswered (the service ended, threw, or dropped
//    it) - service_ended. An asker that is gone first leaves nothing behind:
//    its reply is dropped.
//  - no allocation per request beyond the message itself (a request of up to
//    32 bytes travels inline); the asker's coroutine frame comes from the slab.
//  - a service may reply from any thread (a threaded_component's thread):
//    every reply goes through detail::reply_table::deliver().
//  - within() bounds the wait for the answer; the wait for room in a full
//    service is bounded by the service's progress (or use fail_if_full()).
//  - across schedulers (a service_directory, e.g. scheduler_group's): the
//    same call. The request waits in the service's bounded transit queue
//    (detail/service_port.hpp); a full one parks the asker until the
//    service's scheduler takes a batch (or fails fast with fail_if_full());
//    within() bounds that wait too.
//  - the asker sleeps on wait(ev_external): the reply arrives by
//    signal_external(), and a foreign signal meanwhile is raised again.
#pragma once

#include <kamaelia/core/box.hpp>
#include <kamaelia/core/component.hpp>
#include <kamaelia/core/detail/reply_table.hpp>
#include <kamaelia/core/result.hpp>
#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/core/services.hpp>
#include <kamaelia/core/task.hpp>

#include <chrono>
#include <coroutine>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace kamaelia {

// The reply type of a request type: Req::reply_type, or a specialisation
// (empty otherwise, so ask() drops out of overload sets quietly).
template <class Req, class = void>
struct reply_of {};
template <class Req>
struct reply_of<Req, std::void_t<typename Req::reply_type>> {
    using type = typename Req::reply_type;
};
template <class Req>
using reply_of_t = typename reply_of<Req>::type;

// Replies given on this thread while a reply_batch lives wake each asker's
// scheduler once, when it ends, instead of once a reply. A service that
// answers a batch (a group commit) should hold one around its answers: on a
// core shared with the askers' scheduler, each wake-up would otherwise let
// that scheduler preempt the service after every answer (two context
// switches a request). Nests (the outermost posts); any thread.
//
//   { reply_batch replies; for (auto& j : batch) j.rq.reply(decide(j)); }
class reply_batch {
public:
    reply_batch() noexcept;
    ~reply_batch();
    reply_batch(const reply_batch&) = delete;
    reply_batch& operator=(const reply_batch&) = delete;

private:
    detail::reply_batch_state state_;
};

// A request as the service receives it. Move-only; answered once.
template <class Req, class Rep = reply_of_t<Req>>
class request {
public:
    using body_type = Req;
    using reply_type = Rep;

    Req body;

    request(Req b, detail::reply_ticket t) : body(std::move(b)), ticket_(std::move(t)) {}
    request(request&& o) noexcept(std::is_nothrow_move_constructible_v<Req>) = default;
    request& operator=(request&& o) noexcept(std::is_nothrow_move_assignable_v<Req>) {
        if (this != &o) {
            abandon();
            body = std::move(o.body);
            ticket_ = std::move(o.ticket_);
        }
        return *this;
    }
    request(const request&) = delete;
    request& operator=(const request&) = delete;
    ~request() { abandon(); }

    void reply(Rep v) { finish(result<Rep>(std::move(v))); }
    void fail(service_error e) { finish(result<Rep>(std::move(e))); }
    void fail(std::string text) { fail(service_error{service_errc::failed, std::move(text)}); }
    // False once answered, or when the asker has gone (its answer would be dropped).
    bool pending() const noexcept { return static_cast<bool>(ticket_); }

private:
    void finish(result<Rep> r) {
        if (!ticket_) return;
        detail::reply_ticket t = std::move(ticket_);
        ticket_.table.reset();
        t.table->deliver(t, &r);
    }
    void abandon() noexcept {
        if (!ticket_) return;
        try {
            finish(result<Rep>(service_error{service_errc::service_ended, "the service ended without answering"}));
        } catch (...) {
            ticket_.table.reset(); // out of memory building the text: the asker times out or is stopped
        }
    }
    detail::reply_ticket ticket_;
};

struct ask_options {
    // No answer by then: service_errc::timeout (the late answer is dropped).
    std::optional<duration> within;
    // The service's inbox is full: service_errc::full at once instead of waiting.
    bool fail_if_full = false;
    // Also wake on "control" while the answer is awaited, and give up
    // (service_errc::cancelled; the late answer is dropped) once this says
    // so: for an asker that must notice its client leaving meanwhile. It is
    // called on the asker's thread before each wait and must take what it
    // reads from "control" (else it is called again at once).
    bool (*cancel_if)(component&) = nullptr;
};

inline ask_options within(duration d) { return ask_options{d, false}; }
inline ask_options fail_if_full(std::optional<duration> d = std::nullopt) { return ask_options{d, true}; }

namespace detail {

// co_await current_component{} inside a subtask: the component it runs in.
struct current_component {
    component* c = nullptr;
    bool await_ready() const noexcept { return false; }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> h) noexcept {
        c = h.promise().comp;
        return false;
    }
    component* await_resume() const noexcept { return c; }
};

service_registry& registry_of(component& c);

template <class Rep>
struct reply_slot {
    std::optional<result<Rep>> value;
    reply_ticket ticket;

    static void complete(void* slot, void* v) noexcept {
        auto* s = static_cast<reply_slot*>(slot);
        s->value.emplace(std::move(*static_cast<result<Rep>*>(v)));
    }
    void open(component& c) { ticket = registry_of(c).replies().open(c, this, &complete); }
    void close() noexcept {
        if (ticket) ticket.table->close(ticket);
        ticket.table.reset();
    }
    reply_slot() = default;
    reply_slot(const reply_slot&) = delete;
    ~reply_slot() { close(); }
};

struct remote_push {
    std::optional<service_error> error;
    bool other_signal = false; // a foreign signal_external() came meanwhile
};
class service_port;
// The remote half of ask() (services.cpp): `m` goes into the port of a
// service on another scheduler, waiting for room unless fail_if_full.
subtask<remote_push> push_remote(component& self, service_port& port, message& m, const reply_ticket& t,
                                 const ask_options& opt, std::optional<time_point> deadline, std::string_view name);

template <class Rep>
result<Rep> take(reply_slot<Rep>& s) {
    result<Rep> r = std::move(*s.value);
    s.close();
    return r;
}

} // namespace detail

// Sends `req` to the service registered as `name` on the asker's scheduler
// (or in the service_directory its scheduler belongs to) and resumes with its answer or an error. Call it from a component's
// coroutine: `auto r = co_await ask("name", req);`.
//
// g++ 12 destroys class temporaries inside a co_await expression wrongly:
// pass a named request (`check c{...}; co_await ask("x", std::move(c));`),
// never `ask("x", check{...})` when the request owns memory. The request is
// taken by reference and moved into the message before the first suspension.
template <class R, class Req = std::remove_cvref_t<R>, class Rep = reply_of_t<Req>>
subtask<result<Rep>> ask(std::string_view name, R&& req, ask_options opt = {}) {
    component* self = co_await detail::current_component{};
    const service_registry::service* svc = detail::registry_of(*self).find_for_ask(name);
    if (!svc) co_return service_error{service_errc::unknown_service, "no service \"" + std::string(name) + "\""};
    scheduler& sched = *self->sched();
    std::optional<time_point> deadline;
    bool other_signal = false;
    detail::reply_slot<Rep> slot; // before the request: a request dropped here still finds it open

    if (svc->remote) {
        // The service lives on another scheduler: through its port.
        std::shared_ptr<detail::service_port> port = svc->port; // svc may go from the map meanwhile
        if (opt.within) deadline = sched.now() + *opt.within;
        slot.open(*self);
        message m(request<Req, Rep>(Req(std::forward<R>(req)), slot.ticket));
        detail::remote_push pushed = co_await detail::push_remote(*self, *port, m, slot.ticket, opt, deadline, name);
        other_signal = pushed.other_signal;
        if (pushed.error) {
            m.reset(); // answers our own (closing) slot: nothing crosses a thread
            slot.close();
            if (other_signal) self->signal_external();
            co_return std::move(*pushed.error);
        }
    } else {
        inbox* target = svc->box->final_inbox();
        if (!target)
            co_return service_error{service_errc::service_ended,
                                    "service \"" + std::string(name) + "\" is not reading"};
        if (opt.fail_if_full && target->full())
            co_return service_error{service_errc::full, "service \"" + std::string(name) + "\" is full"};
        if (opt.within) deadline = sched.now() + *opt.within;
        slot.open(*self);
        message m(request<Req, Rep>(Req(std::forward<R>(req)), slot.ticket));
        if (!detail::inbox_access::try_push(*target, m)) {
            // Full: wait for room like any sender (the request waits in our frame).
            component::send_awaiter room(self);
            room.w.msg = std::move(m);
            room.w.target = target;
            room.must_park = true;
            bool delivered = co_await room;
            // Not delivered: the service went (its destructor answered the
            // request service_ended), or a stop arrived on our control.
            if (!delivered && !slot.ticket.table->ready(slot.ticket)) {
                slot.close();
                co_return service_error{service_errc::cancelled,
                                        "stopped while waiting for room in \"" + std::string(name) + "\""};
            }
        }
    }
    detail::reply_table& table = *slot.ticket.table;
    // The reply wakes us through signal_external(). Another signal that
    // arrives meanwhile (an I/O completion of the same component) is raised
    // again before we return, so it is not lost.
    const std::uint8_t events = component::ev_external | (opt.cancel_if ? component::ev_control : 0);
    for (;;) {
        if (table.ready(slot.ticket)) break;
        if (opt.cancel_if && opt.cancel_if(*self)) {
            slot.close();
            if (other_signal) self->signal_external();
            co_return service_error{service_errc::cancelled, "gave up waiting for \"" + std::string(name) + "\""};
        }
        std::optional<duration> left;
        if (deadline) {
            time_point now = sched.now();
            if (now >= *deadline) {
                slot.close();
                if (other_signal) self->signal_external();
                co_return service_error{service_errc::timeout, "no answer from \"" + std::string(name) + "\" in time"};
            }
            left = *deadline - now;
        }
        if (!table.start_waiting(slot.ticket)) break;
        auto w = self->wait(events, left);
        co_await w;
        if (!table.stop_waiting(slot.ticket) && (!deadline || sched.now() < *deadline)) other_signal = true;
    }
    if (other_signal) self->signal_external();
    co_return detail::take(slot);
}

} // namespace kamaelia
