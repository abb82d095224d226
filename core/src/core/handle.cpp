#include <kamaelia/core/handle.hpp>

#include "thread_bridge.hpp"

#include <spdlog/spdlog.h>

namespace kamaelia {

namespace {

constexpr std::string_view wake_box_name = "_wake";

// Marks a bridge closed: the scheduler side will not move anything again.
void close_bridge_locked(detail::thread_bridge& b) {
    b.closed = true;
    b.sched = nullptr; // no post may reach a scheduler that is going
    b.cv.notify_all();
}

// The scheduler side of a handle: parent of the wrapped component, linked to
// each of its boxes ("to_<inbox>" → inbox, outbox → "from_<outbox>").
class handle_proxy final : public component {
public:
    handle_proxy(std::shared_ptr<detail::thread_bridge> b, const std::vector<std::string>& inboxes,
                 const std::vector<std::string>& outboxes)
        : b_(std::move(b)),
          inboxes_(inboxes),
          outboxes_(outboxes) {
        declare_inbox(std::string(wake_box_name), "wake-ups from the handle's side (internal)");
        for (const auto& n : inboxes_) declare_outbox("to_" + n, "what the handle puts into \"" + n + "\"");
        for (const auto& n : outboxes_) declare_inbox("from_" + n, "what the handle gets from \"" + n + "\"");
    }
    ~handle_proxy() override {
        std::lock_guard<std::mutex> lk(b_->mutex);
        close_bridge_locked(*b_);
    }
    std::string type_name() const override { return "handle_proxy"; }

private:
    task main() override;

    std::shared_ptr<detail::thread_bridge> b_;
    std::vector<std::string> inboxes_; // the wrapped component's, in queue order
    std::vector<std::string> outboxes_;
};

task handle_proxy::main() {
    std::shared_ptr<detail::thread_bridge> b = b_;
    std::vector<component*> kids = children();
    component* child = kids.empty() ? nullptr : kids.front();
    detail::bridge_pump pump(*this, b, in(box_name(wake_box_name)));
    for (std::size_t i = 0; i < inboxes_.size(); ++i)
        pump.add_outbound("to_" + inboxes_[i], i, inboxes_[i] == "control");
    for (std::size_t i = 0; i < outboxes_.size(); ++i) {
        std::string n = "from_" + outboxes_[i];
        pump.add_inbound(in(box_name(std::string_view(n))), i, outboxes_[i] == "signal");
    }
    for (;;) {
        pump.step();
        bool dropped;
        {
            std::lock_guard<std::mutex> lk(b->mutex);
            dropped = b->foreign_done;
        }
        // The handle is gone: the wrapped component goes with this proxy.
        if (dropped) break;
        if (!child || child->finished()) {
            // Everything it sent is in our inboxes by now (its end notice too).
            pump.flush_inbound();
            std::lock_guard<std::mutex> lk(b->mutex);
            if (child && child->failed()) b->error_text = child->error_text();
            close_bridge_locked(*b);
            break;
        }
        auto w = pump.wait(true);
        co_await w;
    }
}

// Closes the bridge if the setup never ran (the scheduler went first).
struct setup_token {
    std::shared_ptr<detail::thread_bridge> b;
    bool started = false;
    ~setup_token() {
        if (started) return;
        std::lock_guard<std::mutex> lk(b->mutex);
        close_bridge_locked(*b);
    }
};

} // namespace

// ---- handle --------------------------------------------------------------------

handle::handle() noexcept = default;

handle::handle(scheduler& s, std::unique_ptr<component> c, std::size_t queue_limit) {
    if (!c) throw bad_component("handle: null component");
    if (c->state() != component_state::created || c->parent())
        throw bad_state("handle: " + c->name() + " must be new (not activated, no parent)");
    if (queue_limit == 0) queue_limit = 1;
    name_ = c->name();
    bridge_ = std::make_shared<detail::thread_bridge>();
    std::vector<std::string> inboxes, outboxes;
    for (const auto& info : c->boxes()) {
        std::string n(info.name);
        if (info.b->is_inbox()) {
            bridge_->from_foreign.push_back(detail::bridge_queue(n, n == "control", queue_limit));
            inboxes.push_back(std::move(n));
        } else {
            bridge_->to_foreign.push_back(detail::bridge_queue(n, n == "signal", queue_limit));
            outboxes.push_back(std::move(n));
        }
    }
    bridge_->sched = &s;
    // std::function needs copyable captures: the component travels in a shared holder
    // (deleted unstarted if the scheduler never runs the setup).
    auto holder = std::make_shared<std::unique_ptr<component>>(std::move(c));
    auto token = std::make_shared<setup_token>();
    token->b = bridge_;
    scheduler* sp = &s;
    std::lock_guard<std::mutex> lk(bridge_->mutex);
    s.post([sp, holder, token, inboxes = std::move(inboxes), outboxes = std::move(outboxes)] {
        try {
            auto proxy = std::make_unique<handle_proxy>(token->b, inboxes, outboxes);
            component& child = proxy->add_child(std::move(*holder));
            for (const auto& n : inboxes) {
                std::string from = "to_" + n;
                component::link({*proxy, box_name(std::string_view(from))}, {child, box_name(std::string_view(n))});
            }
            for (const auto& n : outboxes) {
                std::string to = "from_" + n;
                component::link({child, box_name(std::string_view(n))}, {*proxy, box_name(std::string_view(to))});
            }
            sp->spawn(std::move(proxy));
            child.activate(*sp);
            token->started = true;
        } catch (const std::exception& e) {
            spdlog::error("handle: cannot start the wrapped component: {}", e.what());
            std::lock_guard<std::mutex> lk2(token->b->mutex);
            token->b->error_text = e.what();
        }
    });
}

handle::handle(handle&& o) noexcept : bridge_(std::move(o.bridge_)), name_(std::move(o.name_)) {}

handle& handle::operator=(handle&& o) noexcept {
    if (this != &o) {
        release();
        bridge_ = std::move(o.bridge_);
        name_ = std::move(o.name_);
    }
    return *this;
}

handle::~handle() { release(); }

void handle::release() noexcept {
    if (!bridge_) return;
    {
        std::lock_guard<std::mutex> lk(bridge_->mutex);
        bridge_->foreign_done = true;
        try {
            bridge_->wake_proxy_locked();
        } catch (...) {
            // out of memory posting: the proxy ends with the scheduler instead
        }
    }
    bridge_.reset();
}

void handle::check_blocking_allowed() const {
    // Called with the mutex held; b.sched is valid while set.
    if (bridge_->sched && bridge_->sched->in_scheduler_thread())
        throw bad_state("handle " + name_ + ": a blocking call on the scheduler's own thread would deadlock");
}

bool handle::put_message(message m, box_name bn, duration timeout) {
    if (!bridge_) throw bad_state("put on an empty handle");
    m.detach(); // the message crosses to the scheduler thread
    detail::thread_bridge& b = *bridge_;
    std::unique_lock<std::mutex> lk(b.mutex);
    detail::bridge_queue& q = b.out_queue(bn, name_);
    if (b.closed) return false;
    if (q.full()) {
        if (timeout <= duration::zero()) return false;
        check_blocking_allowed();
        b.wait_locked(lk, timeout, [&] { return b.closed || !q.full(); });
        if (b.closed || q.full()) return false;
    }
    b.push_out_locked(q, std::move(m), false);
    return true;
}

bool handle::try_put_message(message& m, box_name bn) {
    if (!bridge_) throw bad_state("put on an empty handle");
    detail::thread_bridge& b = *bridge_;
    std::lock_guard<std::mutex> lk(b.mutex);
    detail::bridge_queue& q = b.out_queue(bn, name_);
    if (b.closed || q.full()) return false;
    m.detach();
    b.push_out_locked(q, std::move(m), false);
    return true;
}

std::optional<message> handle::take(box_name bn, check_fn check, bool block, duration timeout) {
    if (!bridge_) throw bad_state("get on an empty handle");
    detail::thread_bridge& b = *bridge_;
    std::unique_lock<std::mutex> lk(b.mutex);
    detail::bridge_queue& q = b.in_queue(bn, name_);
    if (q.items.empty()) {
        if (!block || b.closed || timeout <= duration::zero()) return std::nullopt;
        check_blocking_allowed();
        b.wait_locked(lk, timeout, [&] { return b.closed || !q.items.empty(); });
        if (q.items.empty()) return std::nullopt;
    }
    if (check) check(q.items.front().msg); // a wrong type throws and leaves it queued
    return b.pop_in_locked(q);
}

std::size_t handle::ready(box_name bn) const {
    if (!bridge_) return 0;
    std::lock_guard<std::mutex> lk(bridge_->mutex);
    return bridge_->in_queue(bn, name_).items.size();
}

bool handle::finished() const {
    if (!bridge_) return true;
    std::lock_guard<std::mutex> lk(bridge_->mutex);
    return bridge_->closed;
}

bool handle::wait_finished(duration timeout) const {
    if (!bridge_) return true;
    detail::thread_bridge& b = *bridge_;
    std::unique_lock<std::mutex> lk(b.mutex);
    if (b.closed) return true;
    if (timeout <= duration::zero()) return false;
    check_blocking_allowed();
    return b.wait_locked(lk, timeout, [&] { return b.closed; });
}

bool handle::failed() const {
    if (!bridge_) return false;
    std::lock_guard<std::mutex> lk(bridge_->mutex);
    return !bridge_->error_text.empty();
}

std::string handle::error_text() const {
    if (!bridge_) return {};
    std::lock_guard<std::mutex> lk(bridge_->mutex);
    return bridge_->error_text;
}

// ---- background ------------------------------------------------------------------

background::background()
    : thread_([this] {
          sched_.run_forever();
          std::lock_guard<std::mutex> lk(mutex_);
          loop_done_ = true;
          loop_cv_.notify_all();
      }) {}

background::~background() {
    stop();
    if (thread_.joinable()) join_loop(); // stop() was called from the scheduler's own thread
}

void background::join_loop() {
    // scheduler::stop() can be lost when it races with the loop's I/O poll
    // (the loop does not look at the flag again before blocking), so ask
    // again until the loop has returned. Only ever runs at shutdown.
    std::unique_lock<std::mutex> lk(mutex_);
    while (!loop_cv_.wait_for(lk, std::chrono::milliseconds(20), [&] { return loop_done_; })) {
        lk.unlock();
        sched_.stop();
        lk.lock();
    }
    lk.unlock();
    thread_.join();
}

handle background::wrap(std::unique_ptr<component> c, std::size_t queue_limit) {
    std::lock_guard<std::mutex> lk(mutex_);
    if (stopped_) throw bad_state("background::wrap after stop()");
    handle h(sched_, std::move(c), queue_limit);
    // Forget handles that have gone, remember this one (stop() closes it).
    std::erase_if(bridges_, [](const std::weak_ptr<detail::thread_bridge>& w) { return w.expired(); });
    bridges_.push_back(h.bridge_);
    return h;
}

void background::stop() {
    std::vector<std::shared_ptr<detail::thread_bridge>> live;
    {
        std::lock_guard<std::mutex> lk(mutex_);
        if (stopped_) return;
        stopped_ = true;
        for (auto& w : bridges_)
            if (auto p = w.lock()) live.push_back(std::move(p));
        bridges_.clear();
    }
    // Close the handles first: from here on no outside thread posts into a
    // scheduler that is about to go.
    for (auto& p : live) {
        std::lock_guard<std::mutex> lk(p->mutex);
        close_bridge_locked(*p);
    }
    sched_.stop();
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) join_loop();
}

} // namespace kamaelia
