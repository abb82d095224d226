#include <kamaelia/core/detail/xlink.hpp>
#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/core/services.hpp>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace kamaelia {

namespace {

constexpr std::size_t npos = static_cast<std::size_t>(-1);

class steady_source final : public clock_source {
public:
    time_point now() const noexcept override { return clock_type::now(); }
};

steady_source& steady() {
    static steady_source s;
    return s;
}

} // namespace

struct scheduler::impl {
    asio::io_context io{1};
    asio::steady_timer wake_timer{io};
    time_point armed{time_point::max()};
    std::mutex posts_mutex;
    std::vector<std::function<void()>> posts;
    bool post_pending = false;
    service_registry services;
};

scheduler::scheduler() : scheduler(steady()) {}

scheduler::scheduler(clock_source& clock) : clock_(&clock), impl_(std::make_unique<impl>()) {
    rq_cap_ = 64;
    rq_ = static_cast<component**>(std::malloc(sizeof(component*) * rq_cap_));
    if (!rq_) throw std::bad_alloc();
}

scheduler::~scheduler() {
    // Take every top-level component down: owned ones are deleted, the
    // others lose their frames (their objects belong to someone else).
    while (component* c = top_) {
        remove_top(c);
        if (c->flags_ & detail::flag_scheduler_owned) {
            c->parent_ = nullptr;
            c->teardown(); // the frame goes while the derived object is whole
            delete c;
        } else {
            c->teardown();
            c->sched_ = nullptr;
        }
    }
    detail::xlink_scheduler_gone(*this, xlinks_); // no channel posts here any more
    std::free(rq_);
}

scheduler& scheduler::default_scheduler() {
    static scheduler s;
    return s;
}

asio::io_context& scheduler::io() noexcept { return impl_->io; }

service_registry& scheduler::services() { return impl_->services; }

time_point scheduler::now() const noexcept { return clock_->now(); }

bool scheduler::in_scheduler_thread() const noexcept {
    return thread_.load(std::memory_order_relaxed) == std::this_thread::get_id();
}

component& scheduler::spawn(std::unique_ptr<component> c) {
    c->activate(*this); // may throw: the unique_ptr still owns it then
    component* raw = c.release();
    raw->flags_ |= detail::flag_scheduler_owned;
    return *raw;
}

std::vector<component*> scheduler::top_level() const {
    std::vector<component*> v;
    for (component* c = top_; c; c = c->next_sibling_) v.push_back(c);
    return v;
}

void scheduler::add_top(component* c) noexcept {
    c->prev_sibling_ = nullptr;
    c->next_sibling_ = top_;
    if (top_) top_->prev_sibling_ = c;
    top_ = c;
}

// O(1), and a no-op for a component not in the list (no previous sibling
// and not the head): teardown() may ask again for one already removed.
void scheduler::remove_top(component* c) noexcept {
    if (c->prev_sibling_) {
        c->prev_sibling_->next_sibling_ = c->next_sibling_;
    } else if (top_ == c) {
        top_ = c->next_sibling_;
    } else {
        return;
    }
    if (c->next_sibling_) c->next_sibling_->prev_sibling_ = c->prev_sibling_;
    c->next_sibling_ = c->prev_sibling_ = nullptr;
}

// ---- run queue ------------------------------------------------------------------

void scheduler::grow_queue() {
    std::size_t ncap = rq_cap_ * 2;
    auto* n = static_cast<component**>(std::malloc(sizeof(component*) * ncap));
    if (!n) std::abort(); // out of memory while waking: nothing sane to do
    for (std::size_t i = 0; i < rq_size_; ++i) n[i] = rq_[(rq_head_ + i) & (rq_cap_ - 1)];
    std::free(rq_);
    rq_ = n;
    rq_head_ = 0;
    rq_cap_ = ncap;
}

void scheduler::dequeue_everywhere(component* c) noexcept {
    if (c->flags_ & detail::flag_queued) {
        for (std::size_t i = 0; i < rq_size_; ++i) {
            component*& slot = rq_[(rq_head_ + i) & (rq_cap_ - 1)];
            if (slot == c) slot = nullptr;
        }
        c->flags_ &= ~detail::flag_queued;
    }
    // Only a finished component waits in reap_ (reap_finished takes it out
    // before it is reaped): no walk for the usual case, a reaped one.
    if (c->state_ == component_state::finished)
        for (auto& r : reap_)
            if (r == c) r = nullptr;
    if (running_ == c) running_ = nullptr;
}

void scheduler::resume(component* c) {
    running_ = c;
    ++c->wakeups_;
    ++stats_.resumes;
    if (profiling_) {
        auto t0 = clock_type::now();
        c->current_.resume();
        auto dt = clock_type::now() - t0;
        if (running_ == c) c->rare().cpu_ns += std::chrono::duration_cast<std::chrono::nanoseconds>(dt).count();
    } else {
        c->current_.resume();
    }
    if (running_ == c) {
        running_ = nullptr;
        if ((c->flags_ & detail::flag_stop_requested) && c->state_ == component_state::active) {
            c->state_ = component_state::finished;
            c->wait_flags_ = 0;
            finished(c);
        }
    }
}

void scheduler::run_cycle() {
    ++stats_.cycles;
    rq_seen_.store(rq_size_, std::memory_order_relaxed);
    std::size_t n = rq_size_;
    while (n--) {
        component* c = rq_[rq_head_];
        rq_head_ = (rq_head_ + 1) & (rq_cap_ - 1);
        --rq_size_;
        if (!c) continue; // removed while queued
        c->flags_ &= ~detail::flag_queued;
        if (c->state_ != component_state::active) continue;
        resume(c);
        if (!reap_.empty()) reap_finished();
    }
}

void scheduler::finished(component* c) noexcept { reap_.push_back(c); }

void scheduler::reap_finished() {
    // Index loop: reaping may delete components that are later in the list
    // (they are nulled out by dequeue_everywhere).
    for (std::size_t i = 0; i < reap_.size(); ++i) {
        component* c = reap_[i];
        if (!c) continue;
        reap_[i] = nullptr;
        --live_;
        if (c->flags_ & detail::flag_queued) dequeue_everywhere(c);
        if (c->ext_ && c->ext_->heap_index != npos) timer_remove(c);
        // Report an escaped exception before anything is unlinked, so the
        // graph hears of it through "signal".
        if (c->root_) {
            auto h = std::coroutine_handle<task::promise_type>::from_address(c->root_.address());
            if (std::exception_ptr e = h.promise().error) {
                std::string what;
                try {
                    std::rethrow_exception(e);
                } catch (const std::exception& ex) {
                    what = ex.what();
                } catch (...) {
                    what = "unknown exception";
                }
                c->flags_ |= detail::flag_failed;
                c->rare().error = what;
                ++stats_.failures;
                spdlog::error("component {} failed: {}", c->name(), what);
                try {
                    c->send_forced(message(ipc{ipc_kind::component_error, what, c->id_}), "signal");
                } catch (...) {}
            }
        }
        c->destroy_frame();
        c->finish_links_and_children();
        c->absorb_all_waiters();
        services().component_finished(*c); // its services go; queued requests are answered
        c->state_ = component_state::reaped;
        if (component* p = c->parent_) {
            p->child_finished(c);
        } else {
            remove_top(c);
            if (c->flags_ & detail::flag_scheduler_owned) {
                delete c;
            } else {
                c->sched_ = nullptr; // the object may outlive this scheduler
            }
        }
    }
    reap_.clear();
}

// ---- timers --------------------------------------------------------------------------

void scheduler::heap_place(std::size_t i, component* c) noexcept {
    timers_[i] = c;
    c->ext_->heap_index = i;
}

void scheduler::heap_up(std::size_t i) noexcept {
    component* c = timers_[i];
    while (i > 0) {
        std::size_t p = (i - 1) / 2;
        if (!(c->ext_->deadline < timers_[p]->ext_->deadline)) break;
        heap_place(i, timers_[p]);
        i = p;
    }
    heap_place(i, c);
}

void scheduler::heap_down(std::size_t i) noexcept {
    component* c = timers_[i];
    std::size_t n = timers_.size();
    for (;;) {
        std::size_t l = 2 * i + 1;
        if (l >= n) break;
        std::size_t m = l;
        if (l + 1 < n && timers_[l + 1]->ext_->deadline < timers_[l]->ext_->deadline) m = l + 1;
        if (!(timers_[m]->ext_->deadline < c->ext_->deadline)) break;
        heap_place(i, timers_[m]);
        i = m;
    }
    heap_place(i, c);
}

void scheduler::timer_set(component* c, time_point t) {
    auto& e = c->ext();
    e.timed_out = false;
    if (e.heap_index == npos) {
        e.deadline = t;
        timers_.push_back(c);
        e.heap_index = timers_.size() - 1;
        heap_up(e.heap_index);
        return;
    }
    time_point old = e.deadline;
    e.deadline = t;
    if (t < old) {
        heap_up(e.heap_index);
    } else {
        heap_down(e.heap_index);
    }
}

void scheduler::timer_remove(component* c) noexcept {
    std::size_t i = c->ext_->heap_index;
    c->ext_->heap_index = npos;
    component* last = timers_.back();
    timers_.pop_back();
    if (i < timers_.size()) {
        heap_place(i, last);
        heap_up(i);
        heap_down(last->ext_->heap_index);
    }
}

void scheduler::fire_timers() {
    if (timers_.empty()) return;
    time_point t = now();
    while (!timers_.empty() && timers_.front()->ext_->deadline <= t) {
        component* c = timers_.front();
        timer_remove(c);
        if (c->wait_flags_ & detail::wait_timer) {
            c->ext_->timed_out = true;
            c->wake();
        }
    }
}

// ---- I/O and cross-thread requests -------------------------------------------------------

bool scheduler::poll_io() {
    ++stats_.io_polls;
    if (impl_->io.stopped()) impl_->io.restart(); // ran out of work outside run()
    return impl_->io.poll() > 0;
}

void scheduler::post(std::function<void()> fn) {
    bool first;
    {
        std::lock_guard<std::mutex> lk(impl_->posts_mutex);
        impl_->posts.push_back(std::move(fn));
        first = !impl_->post_pending;
        impl_->post_pending = true;
    }
    if (first) asio::post(impl_->io, [this] { run_posts(); });
}

void scheduler::run_posts() {
    std::vector<std::function<void()>> batch;
    {
        std::lock_guard<std::mutex> lk(impl_->posts_mutex);
        batch.swap(impl_->posts);
        impl_->post_pending = false; // cleared with the queue taken: no wake-up is lost
    }
    wakeups_.store(wakeups_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    for (auto& f : batch) {
        ++stats_.posts;
        f();
    }
}

void scheduler::stop() {
    stop_.store(true, std::memory_order_release);
    asio::post(impl_->io, [] {}); // unblock run_one()
}

void scheduler::block() {
    ++stats_.blocks;
    rq_seen_.store(0, std::memory_order_relaxed);
    if (!timers_.empty() && clock_ == &steady()) {
        time_point t = timers_.front()->ext_->deadline;
        if (t != impl_->armed) {
            impl_->armed = t;
            impl_->wake_timer.expires_at(t);
            impl_->wake_timer.async_wait([this](const asio::error_code& ec) {
                if (!ec) impl_->armed = time_point::max();
            });
        }
    }
    impl_->io.run_one();
}

void scheduler::loop(bool forever) {
    thread_.store(std::this_thread::get_id(), std::memory_order_relaxed);
    auto guard = asio::make_work_guard(impl_->io);
    unsigned since_poll = 0;
    while (!stop_.load(std::memory_order_acquire)) {
        if (!reap_.empty()) reap_finished(); // components stopped from outside a resume
        if (rq_size_) run_cycle();
        fire_timers();
        // Under load, poll I/O every few cycles so sockets are not starved.
        // Idle, go straight to block(): its run_one() takes what is ready
        // (a poll() first would cost one more epoll_wait per wake-up).
        if (rq_size_ != 0 && ++since_poll >= 16) {
            since_poll = 0;
            poll_io();
        }
        if (rq_size_ || !reap_.empty()) continue;
        if (!forever && live_ == 0) break;
        if (stop_.load(std::memory_order_acquire)) break; // a stop() that poll() consumed
        block();
    }
    rq_seen_.store(rq_size_, std::memory_order_relaxed);
    stop_.store(false, std::memory_order_release);
    thread_.store(std::thread::id{}, std::memory_order_relaxed);
}

void scheduler::run() { loop(false); }

void scheduler::run_forever() { loop(true); }

bool scheduler::run_once() {
    thread_.store(std::this_thread::get_id(), std::memory_order_relaxed);
    bool any = !reap_.empty();
    if (any) reap_finished();
    fire_timers();
    any = poll_io() || any;
    if (rq_size_) {
        run_cycle();
        any = true;
    }
    return any;
}

std::size_t scheduler::run_until_idle(std::size_t max_cycles) {
    std::size_t n = 0;
    while (n < max_cycles) {
        bool any = run_once();
        ++n;
        if (!any && rq_size_ == 0) break;
    }
    return n;
}

} // namespace kamaelia
