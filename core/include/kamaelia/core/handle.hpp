// Outside threads talking to a running graph (Axon's background + Handle,
// and likefile's blocking get).
//
//   kamaelia::background bg;                        // a scheduler on its own thread
//   auto h = bg.wrap(std::make_unique<upper>());    // runs `upper` there
//   h.put(std::string("hello"));                    // into its "inbox"
//   auto reply = h.get<std::string>("outbox", 2s);  // from its "outbox", or nullopt
//   h.put(kamaelia::producer_finished(), "control");
//
// The wrapped component becomes the child of a proxy component on the
// scheduler, linked to it box for box: every inbox of the wrapped component
// can be put into, every outbox read with get(). Between the two sides sit
// bounded queues (default 1000 messages a box): put() blocks while its queue
// is full, get() blocks until data arrives, each with an optional timeout;
// try_put/try_get never block. Data goes before control both ways: a
// producer_finished put after data reaches "control" only after that data
// reached "inbox", and the proxy moves the wrapped component's "signal" on
// only after the "outbox" data before it.
//
// Lifetimes: either side may go first. When the wrapped component ends (or
// fails: failed(), error_text(), and the component_error on "signal") the
// handle is finished: put() returns false, get() returns what was queued and
// then nullopt. When the scheduler goes away first, the same. When the handle
// goes first, the proxy stops the wrapped component (the handle owns it).
//
// Blocking calls need the scheduler on another thread: on its own thread they
// throw bad_state rather than deadlock (try_put/try_get are fine there).
#pragma once

#include <kamaelia/core/box.hpp>
#include <kamaelia/core/component.hpp>
#include <kamaelia/core/detail/typed_take.hpp>
#include <kamaelia/core/errors.hpp>
#include <kamaelia/core/message.hpp>
#include <kamaelia/core/scheduler.hpp>

#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace kamaelia {

namespace detail {
class thread_bridge;
}

class handle {
public:
    static constexpr std::size_t default_queue_limit = 1000;
    static constexpr duration forever = duration::max();

    handle() noexcept;
    // Wraps `c` (not yet activated, no parent) and runs it on `s`. The
    // scheduler must outlive every blocking call (background guarantees it).
    handle(scheduler& s, std::unique_ptr<component> c, std::size_t queue_limit = default_queue_limit);
    handle(handle&&) noexcept;
    handle& operator=(handle&&) noexcept;
    handle(const handle&) = delete;
    handle& operator=(const handle&) = delete;
    ~handle();

    explicit operator bool() const noexcept { return static_cast<bool>(bridge_); }
    // The wrapped component's name (e.g. "upper_12").
    const std::string& name() const noexcept { return name_; }

    // ---- into the component's inboxes ----------------------------------------
    // Blocks while the queue is full, up to `timeout`. False if the timeout
    // passed or the component has gone (then the value is dropped).
    template <class V>
    bool put(V&& v, box_name b = "inbox", duration timeout = forever) {
        return put_message(message(std::forward<V>(v)), b, timeout);
    }
    bool put_message(message m, box_name b = "inbox", duration timeout = forever);
    // Never blocks: false when the queue is full or the component has gone.
    template <class V>
    bool try_put(V&& v, box_name b = "inbox") {
        message m(std::forward<V>(v));
        return try_put_message(m, b);
    }
    bool try_put_message(message& m, box_name b = "inbox");

    // ---- out of the component's outboxes --------------------------------------
    // Blocks until a message arrives, up to `timeout`; nullopt on timeout or
    // when the component has gone and nothing is left. A message of another
    // type throws type_mismatch and stays queued.
    template <class T>
    std::optional<T> get(box_name b = "outbox", duration timeout = forever) {
        return unwrap<T>(take(b, &check_type<T>, true, timeout));
    }
    std::optional<message> get_message(box_name b = "outbox", duration timeout = forever) {
        return take(b, nullptr, true, timeout);
    }
    template <class T>
    std::optional<T> try_get(box_name b = "outbox") {
        return unwrap<T>(take(b, &check_type<T>, false, duration::zero()));
    }
    std::optional<message> try_get_message(box_name b = "outbox") { return take(b, nullptr, false, duration::zero()); }
    // Messages waiting to be read from `b`.
    std::size_t ready(box_name b = "outbox") const;

    // ---- the component's life ---------------------------------------------------
    // The wrapped component has ended (or the scheduler has gone).
    bool finished() const;
    // Blocks until finished(), up to `timeout`.
    bool wait_finished(duration timeout = forever) const;
    // It ended by throwing; error_text() says what.
    bool failed() const;
    std::string error_text() const;

private:
    friend class background;
    template <class T>
    static void check_type(const message& m) {
        detail::check_type<T>(m);
    }
    template <class T>
    static std::optional<T> unwrap(std::optional<message> m) {
        return detail::unwrap<T>(std::move(m));
    }
    using check_fn = void (*)(const message&);
    std::optional<message> take(box_name b, check_fn check, bool block, duration timeout);
    void release() noexcept;
    void check_blocking_allowed() const;

    std::shared_ptr<detail::thread_bridge> bridge_;
    scheduler* sched_ = nullptr; // only to refuse blocking calls on its own thread
    std::string name_;
};

// A scheduler running on its own thread (run_forever), for programs whose
// main thread is ordinary code. The destructor closes every handle made by
// wrap(), stops the scheduler, joins the thread and then destroys the
// scheduler (taking every component down).
class background {
public:
    background();
    ~background();
    background(const background&) = delete;
    background& operator=(const background&) = delete;

    scheduler& sched() noexcept { return sched_; }
    // Wraps and starts `c` on this scheduler.
    handle wrap(std::unique_ptr<component> c, std::size_t queue_limit = handle::default_queue_limit);
    template <class C, class... A>
    handle make(A&&... a) {
        return wrap(std::make_unique<C>(std::forward<A>(a)...));
    }
    // Stops the scheduler and joins its thread (idempotent); handles made
    // here are closed first. Components are destroyed with this object.
    void stop();

private:
    void join_loop();

    scheduler sched_;
    std::mutex mutex_;
    std::vector<std::weak_ptr<detail::thread_bridge>> bridges_;
    bool stopped_ = false;
    std::condition_variable loop_cv_; // the thread's run_forever() has returned
    bool loop_done_ = false;
    std::thread thread_;
};

} // namespace kamaelia
