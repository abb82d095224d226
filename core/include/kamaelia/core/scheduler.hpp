// The scheduler: one thread running many components cooperatively.
//
// It owns one Asio io_context: socket, timer and cross-thread completions
// wake components on the scheduler's thread. Components that can run sit in
// an intrusive run queue (a ring of pointers, a component at most once);
// each cycle resumes every component queued at its start exactly once
// (round robin); components woken during a cycle run in the next one.
// Asio is polled once every few cycles and whenever the queue empties;
// when nothing can run the thread blocks in the kernel (0% CPU).
//
// Several schedulers may exist in one process; default_scheduler() is the
// convenience instance that activate() and run() use when not told otherwise.
//
// This header needs only the component's name: component.hpp includes it
// (its inline wake-up puts a component on the run queue), never the other way.
#pragma once

#include <kamaelia/core/clock.hpp>
#include <kamaelia/core/fwd.hpp>
#include <kamaelia/core/task.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace asio {
class io_context;
}

namespace kamaelia {

struct scheduler_stats {
    std::uint64_t cycles = 0;
    std::uint64_t resumes = 0;
    std::uint64_t io_polls = 0;
    std::uint64_t blocks = 0;   // times the thread blocked in the kernel
    std::uint64_t posts = 0;    // cross-thread requests run
    std::uint64_t failures = 0; // components that ended with an exception
};

enum class delivery_policy : std::uint8_t;

namespace detail {
class xlink_channel;
class xlink_port;
xlink_port* xlink_open(component& src, component& dst, inbox& d, delivery_policy p);
} // namespace detail

class scheduler {
public:
    scheduler();
    // Timers follow `clock`, not the steady clock (deterministic tests).
    explicit scheduler(clock_source& clock);
    ~scheduler();
    scheduler(const scheduler&) = delete;
    scheduler& operator=(const scheduler&) = delete;

    static scheduler& default_scheduler();

    asio::io_context& io() noexcept;

    // Runs until every component has finished, or stop() is called.
    void run();
    // Like run(), but stays up with nothing to do until stop() (a server, or
    // a scheduler that outside threads feed through handles).
    void run_forever();
    // One cycle without blocking: runs due timers, cross-thread requests,
    // ready I/O handlers and every queued component once. True if anything ran.
    bool run_once();
    // Cycles until nothing is queued (bounded). Returns the cycles run.
    std::size_t run_until_idle(std::size_t max_cycles = 10'000'000);

    // Thread-safe: makes run()/run_forever() return soon.
    void stop();
    bool stop_requested() const noexcept { return stop_.load(std::memory_order_acquire); }

    // Thread-safe: runs `fn` on the scheduler thread. One wake-up of the
    // thread per empty→non-empty change of the request queue.
    void post(std::function<void()> fn);

    time_point now() const noexcept;

    // Activates a top-level component that the scheduler owns and deletes
    // once it has finished.
    component& spawn(std::unique_ptr<component> c);
    template <class C, class... A>
    C& spawn(A&&... a) {
        return static_cast<C&>(spawn(std::make_unique<C>(std::forward<A>(a)...)));
    }

    // Active components (children included).
    std::size_t live() const noexcept { return live_; }
    std::vector<component*> top_level() const;
    service_registry& services();
    bool in_scheduler_thread() const noexcept;
    const scheduler_stats& stats() const noexcept { return stats_; }
    // Components queued to run now (for /metrics).
    std::size_t run_queue_depth() const noexcept { return rq_size_; }
    // The same two figures for a reader on another thread (/metrics of a
    // group): the run-queue depth as of the last cycle, and the wake-ups
    // received from other threads (batches of post()s, cross-scheduler links
    // and services included). Written by the scheduler's thread only, with
    // relaxed stores: never on the send path.
    std::size_t observed_run_queue_depth() const noexcept { return rq_seen_.load(std::memory_order_relaxed); }
    std::uint64_t wakeups_received() const noexcept { return wakeups_.load(std::memory_order_relaxed); }
    // Not running on another thread: this thread may touch its components
    // (before a group starts, or from the scheduler's own thread).
    bool touchable() const noexcept {
        auto t = thread_.load(std::memory_order_relaxed);
        return t == std::thread::id{} || t == std::this_thread::get_id();
    }
    // Measure per-component CPU time (costs two clock reads per resume).
    void set_profiling(bool on) noexcept { profiling_ = on; }

private:
    friend class component;
    friend void detail::on_task_final(component*) noexcept;
    friend detail::xlink_port* detail::xlink_open(component&, component&, inbox&, delivery_policy);
    struct impl;

    void enqueue(component* c) noexcept {
        if (rq_size_ == rq_cap_) grow_queue();
        rq_[(rq_head_ + rq_size_) & (rq_cap_ - 1)] = c;
        ++rq_size_;
    }
    void grow_queue();
    void dequeue_everywhere(component* c) noexcept; // a destroyed component leaves the queue
    void run_cycle();
    void resume(component* c);
    void reap_finished();
    void finished(component* c) noexcept;
    void fire_timers();
    bool poll_io();
    void block();
    void run_posts();
    void loop(bool forever);

    // timers: an indexed binary heap, one entry per component at most
    void timer_set(component* c, time_point t);
    void timer_remove(component* c) noexcept;
    void heap_up(std::size_t i) noexcept;
    void heap_down(std::size_t i) noexcept;
    void heap_place(std::size_t i, component* c) noexcept;

    void add_top(component* c) noexcept;
    void remove_top(component* c) noexcept;

    // run queue (ring of pointers, capacity a power of two)
    component** rq_ = nullptr;
    std::size_t rq_head_ = 0, rq_size_ = 0, rq_cap_ = 0;

    std::vector<component*> reap_;
    std::vector<component*> timers_;
    component* top_ = nullptr;
    std::size_t live_ = 0;
    component* running_ = nullptr;
    clock_source* clock_ = nullptr;
    bool profiling_ = false;
    scheduler_stats stats_;

    std::atomic<std::size_t> rq_seen_{0};
    std::atomic<std::uint64_t> wakeups_{0};
    // Channels to the other schedulers that components here link to
    // (detail/xlink.hpp); this thread only.
    std::vector<std::shared_ptr<detail::xlink_channel>> xlinks_;

    std::atomic<bool> stop_{false};
    std::atomic<std::thread::id> thread_{};
    std::unique_ptr<impl> impl_;
};

} // namespace kamaelia
