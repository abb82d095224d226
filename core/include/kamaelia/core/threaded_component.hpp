// A component whose body is ordinary blocking code on its own thread
// (Axon's threadedcomponent), for work that would block the scheduler:
// SQLite, files, blocking libraries.
//
//   struct store_writer : kamaelia::threaded_component {
//       void thread_main() override {                 // runs on the component's thread
//           while (!shutdown_requested()) {
//               while (auto row = recv<std::string>("inbox"))
//                   send(db_.insert(*row), "outbox");  // blocks while the out-queue is full
//               wait();                                // blocks until any inbox has data
//           }
//           forward_shutdown();
//       }
//   };
//
// On the scheduler it is a normal component: linked, adopted, stopped like any
// other. Its coroutine body is a proxy that moves messages between the real
// boxes and one bounded queue per box (default 1000 messages), data boxes
// before "control" (a shutdown notice never overtakes the data before it) and,
// outbound, "signal" after the data sent before it. Outbound the proxy honours
// the receivers' bounds like any sender: when the receiver is full the message
// waits, the out-queue fills, and the thread's send() blocks. So a slow
// consumer stops a fast thread; memory stays bounded.
//
// The thread starts when the component is first scheduled and is joined when
// the component ends: main returning (the proxy first delivers what it sent),
// main throwing (the exception is logged and reported like any component
// failure: failed(), error_text(), an ipc component_error out of "signal"),
// stop(), the parent ending, or the scheduler being destroyed. When it is
// stopped, every blocking call on the thread throws thread_stopped, so a thread
// blocked in wait(), recv_wait() or send() returns promptly; code blocked
// elsewhere (a long SQLite query) is reached through interrupt().
//
// One thread per instance: make ONE threaded component per database (or file,
// or device) and send it requests from every session, never one per session.
//
// Why thread_main() and not main(): main() is the proxy coroutine (a C++
// virtual cannot differ only in its return type). The thread-side calls below
// hide the coroutine ones (recv, send, data_ready, shutdown_requested ...):
// the thread never touches a box, a link or the scheduler - only these calls.
// Boxes must exist before activation (declare them in the constructor);
// boxes added later have no queue. Children added in the constructor (and
// linked there) are activated with the component: a pool of threaded
// workers fed from this one's outboxes (greylist/service.cpp). Timeouts on the thread are real time
// (steady_clock), not the scheduler's clock.
//
// Destruction: if thread_main() uses members of your class, and the component
// may be destroyed while still running (deleted by a parent that ends first),
// call stop_thread() first thing in your destructor: members of a derived
// class are gone before this base class can join the thread.
#pragma once

#include <kamaelia/core/component.hpp>
#include <kamaelia/core/detail/typed_take.hpp>
#include <kamaelia/core/errors.hpp>
#include <kamaelia/core/ipc.hpp>
#include <kamaelia/core/message.hpp>
#include <kamaelia/core/task.hpp>

#include <cstddef>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

namespace kamaelia {

namespace detail {
class thread_bridge;
}

// Thrown by blocking calls on a threaded component's thread once the
// component is being stopped; the thread should just unwind. It ends the
// thread quietly (it is not reported as a failure).
class thread_stopped : public error {
public:
    using error::error;
};

class threaded_component : public component {
public:
    static constexpr std::size_t default_queue_limit = 1000;
    // For timeouts: wait without one.
    static constexpr duration forever = duration::max();

    explicit threaded_component(std::size_t queue_limit = default_queue_limit);
    ~threaded_component() override;

    // ---- thread side: receiving ------------------------------------------
    // Non-blocking: the oldest message of `b`, if any. A message of another
    // type throws type_mismatch and stays queued.
    template <class T>
    std::optional<T> recv(box_name b = "inbox");
    std::optional<message> recv_message(box_name b = "inbox");
    // Blocks until `b` holds a message or the timeout passes (nullopt).
    template <class T>
    std::optional<T> recv_wait(box_name b = "inbox", duration timeout = forever);
    std::optional<message> recv_message_wait(box_name b = "inbox", duration timeout = forever);
    // Messages queued for the thread on `b` (thread-safe from anywhere).
    std::size_t data_ready(box_name b = "inbox");
    // Blocks until any inbox holds data (true), an end notice was already
    // taken (true), or the timeout passes (false).
    bool wait(duration timeout = forever);

    // ---- thread side: sending --------------------------------------------
    // Queues `v` for the outbox, blocking while that box's queue is full.
    template <class V>
    void send(V&& v, box_name b = "outbox") {
        send_message(message(std::forward<V>(v)), b);
    }
    void send_message(message m, box_name b = "outbox");
    // Never blocks: false when the queue is full (the value is not sent).
    template <class V>
    bool try_send(V&& v, box_name b = "outbox") {
        message m(std::forward<V>(v));
        return try_send_message(m, b);
    }
    bool try_send_message(message& m, box_name b = "outbox");
    // Queues ignoring the bound: for end notices that must not be lost.
    void send_forced(message m, box_name b = "signal");

    // ---- thread side: control conventions ------------------------------------
    // True once a shutdown_microprocess arrived, or a producer_finished
    // arrived and "inbox" has been drained, or the component is being stopped.
    bool shutdown_requested();
    ipc_kind shutdown_kind();
    bool shutdown_is_stop();
    // Sends the end message seen (or producer_finished) out of "signal".
    void forward_shutdown();
    // The component is being stopped (blocking calls throw thread_stopped).
    bool stop_requested() const;

    // The coroutine awaitables make no sense on the thread.
    void wait_any() = delete;
    void wait_for(box_name) = delete;
    void sleep_for(duration) = delete;
    void sleep_until(time_point) = delete;
    void yield() = delete;

    std::size_t queue_limit() const noexcept { return limit_; }

protected:
    // The blocking body, run on the component's own thread.
    virtual void thread_main() = 0;
    // Called on the scheduler thread when the component is stopped while its
    // thread runs, before joining it: unblock what our waits cannot reach
    // (e.g. sqlite3_interrupt). Must be thread-safe towards thread_main().
    virtual void interrupt() noexcept {}
    // Stops and joins the thread (idempotent; not from the thread itself).
    void stop_thread() noexcept;

private:
    task main() final;
    void thread_entry() noexcept;
    static void interrupt_thunk(void* self) noexcept { static_cast<threaded_component*>(self)->interrupt(); }
    template <class T>
    static void check_type(const message& m) {
        detail::check_type<T>(m);
    }
    template <class T>
    static std::optional<T> unwrap(std::optional<message> m) {
        return detail::unwrap<T>(std::move(m));
    }
    using check_fn = void (*)(const message&);
    std::optional<message> pop(box_name b, check_fn check, bool block, duration timeout);

    std::shared_ptr<detail::thread_bridge> bridge_;
    std::size_t limit_;
};

template <class T>
std::optional<T> threaded_component::recv(box_name b) {
    return unwrap<T>(pop(b, &check_type<T>, false, duration::zero()));
}

template <class T>
std::optional<T> threaded_component::recv_wait(box_name b, duration timeout) {
    return unwrap<T>(pop(b, &check_type<T>, true, timeout));
}

} // namespace kamaelia
