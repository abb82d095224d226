#include <kamaelia/core/services.hpp>

#include <kamaelia/core/detail/service_port.hpp>
#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/core/service.hpp>

#include <algorithm>

namespace kamaelia {

std::string_view to_string(service_errc e) noexcept {
    switch (e) {
    case service_errc::unknown_service: return "unknown service";
    case service_errc::full: return "service full";
    case service_errc::timeout: return "timed out";
    case service_errc::service_ended: return "service ended";
    case service_errc::cancelled: return "cancelled";
    case service_errc::failed: return "failed";
    }
    return "?";
}

service_registry::service_registry() : replies_(std::make_shared<detail::reply_table>()) {}

service_registry::~service_registry() {
    for (auto& [_, s] : services_) close_port(s);
    replies_->detach();
}

void service_registry::close_port(service& s) noexcept {
    if (s.port && !s.remote) s.port->close();
}

void service_registry::register_service(std::string name, component& c, std::string inbox_name) {
    if (auto it = services_.find(name); it != services_.end()) {
        if (!it->second.remote) throw service_already_exists("service \"" + name + "\" is already registered");
        services_.erase(it); // a remote service of that name is shadowed by the local one
    }
    if (!c.has_box(box_name(std::string_view(inbox_name))) ||
        !c.find_box(box_name(std::string_view(inbox_name))).is_inbox())
        throw bad_inbox("service \"" + name + "\": " + c.name() + " has no inbox \"" + inbox_name + "\"");
    auto& ib = static_cast<inbox&>(c.find_box(box_name(std::string_view(inbox_name))));
    services_.emplace(std::move(name), service{&c, std::move(inbox_name), &ib});
}

service_registry::service service_registry::retrieve(std::string_view name) const {
    auto it = services_.find(name);
    if (it == services_.end() || it->second.remote) throw unknown_service("no service \"" + std::string(name) + "\"");
    return it->second;
}

bool service_registry::has(std::string_view name) const noexcept { return find(name) != nullptr; }

const service_registry::service* service_registry::find(std::string_view name) const noexcept {
    auto it = services_.find(name);
    return it == services_.end() || it->second.remote ? nullptr : &it->second;
}

const service_registry::service* service_registry::find_for_ask(std::string_view name) {
    auto it = services_.find(name);
    if (it != services_.end()) {
        if (!it->second.remote) return &it->second; // the single-scheduler path: one map lookup, as before
        if (!it->second.port->closed()) return &it->second;
        services_.erase(it); // that service ended; it may have been registered again
    }
    if (!directory_) return nullptr;
    std::shared_ptr<detail::service_port> port = directory_->find(name);
    if (!port) return nullptr;
    service s{nullptr, {}, nullptr, std::move(port), true};
    return &services_.emplace(std::string(name), std::move(s)).first->second;
}

void service_registry::component_finished(component& c) noexcept {
    if (services_.empty()) return;
    std::vector<inbox*> drain;
    for (auto it = services_.begin(); it != services_.end();) {
        if (it->second.comp == &c) {
            if (std::find(drain.begin(), drain.end(), it->second.box) == drain.end()) drain.push_back(it->second.box);
            close_port(it->second); // remote requests in transit are answered service_ended
            it = services_.erase(it);
        } else {
            ++it;
        }
    }
    // Destroying a queued request answers it service_ended.
    for (inbox* b : drain)
        while (!b->empty()) b->pop();
}

void service_registry::deregister(std::string_view name) {
    auto it = services_.find(name);
    if (it == services_.end() || it->second.remote)
        throw multiple_service_deletion("service \"" + std::string(name) + "\" is not registered");
    close_port(it->second);
    services_.erase(it);
}

void service_registry::deregister_all(const component& c) noexcept {
    for (auto it = services_.begin(); it != services_.end();) {
        if (it->second.comp == &c) {
            close_port(it->second);
            it = services_.erase(it);
        } else {
            ++it;
        }
    }
}

// ---- the reply table ----------------------------------------------------------------

namespace detail {

reply_ticket reply_table::open(component& asker, void* slot, reply_complete_fn fn) {
    std::lock_guard<std::mutex> lk(m_);
    if (!sched_) sched_ = asker.sched();
    std::uint32_t i;
    if (free_ != UINT32_MAX) {
        i = free_;
        free_ = entries_[i].next_free;
    } else {
        i = static_cast<std::uint32_t>(entries_.size());
        entries_.emplace_back();
    }
    entry& e = entries_[i];
    e.slot = slot;
    e.fn = fn;
    e.asker = &asker;
    e.owner = std::this_thread::get_id();
    e.open = true;
    e.ready = false;
    e.waiting = false;
    e.room = false;
    e.poked = false;
    ++open_;
    return reply_ticket{shared_from_this(), i, e.gen};
}

void reply_table::close(const reply_ticket& t) noexcept {
    std::lock_guard<std::mutex> lk(m_);
    if (t.index >= entries_.size()) return;
    entry& e = entries_[t.index];
    if (e.gen != t.gen || !e.open) return;
    ++e.gen; // a late reply now carries a stale ticket
    e.open = false;
    e.slot = nullptr;
    e.asker = nullptr;
    e.next_free = free_;
    free_ = t.index;
    --open_;
}

bool reply_table::ready(const reply_ticket& t) {
    std::lock_guard<std::mutex> lk(m_);
    const entry& e = entries_[t.index];
    return e.gen == t.gen && e.ready;
}

bool reply_table::start_waiting(const reply_ticket& t) {
    std::lock_guard<std::mutex> lk(m_);
    entry& e = entries_[t.index];
    if (e.gen != t.gen || e.ready) return false;
    e.waiting = true;
    return true;
}

bool reply_table::stop_waiting(const reply_ticket& t) noexcept {
    std::lock_guard<std::mutex> lk(m_);
    entry& e = entries_[t.index];
    if (e.gen != t.gen) return false;
    e.waiting = false;
    return e.ready;
}

bool reply_table::deliver(const reply_ticket& t, void* value) noexcept {
    bool post = false;
    {
        std::lock_guard<std::mutex> lk(m_);
        if (t.index >= entries_.size()) return false;
        entry& e = entries_[t.index];
        if (e.gen != t.gen || !e.open || e.ready) return false; // the asker has gone, or timed out
        e.fn(e.slot, value);
        e.ready = true;
        if (!e.waiting) return true; // the asker looks before it sleeps
        post = wake_locked(e, t.index);
    }
    if (post) post_ready();
    return true;
}

bool reply_table::wake_locked(entry& e, std::uint32_t index) noexcept {
    if (e.owner == std::this_thread::get_id()) {
        e.waiting = false;
        e.asker->signal_external();
        return false;
    }
    try {
        woken_.push_back({index, e.gen});
    } catch (...) {
        return false; // out of memory: the asker's deadline still applies
    }
    if (post_pending_ || !sched_) return false;
    post_pending_ = true;
    return true;
}

namespace {
thread_local reply_batch_state* held_replies = nullptr;
} // namespace

// One post per batch of wake-ups from another thread. The lambda fits
// std::function's small buffer; the table outlives it (shared). Inside a
// reply_batch the post waits for the batch's end (post_held()).
void reply_table::post_ready() noexcept {
    if (reply_batch_state* b = held_replies) {
        try {
            b->tables.push_back(shared_from_this());
            return;
        } catch (...) {
            // out of memory: post now
        }
    }
    post_held();
}

// Posts under post_m_, not m_: detach() takes both, so the scheduler lives
// for the whole post, while its thread, woken by the post (and preempting
// this one on a shared core), finds m_ free for run_ready().
void reply_table::post_held() noexcept {
    std::lock_guard<std::mutex> lk(post_m_);
    bool posted = false;
    if (scheduler* to = sched_) { // null: the scheduler went meanwhile, its askers with it
        try {
            to->post([self = shared_from_this()] { self->run_ready(); });
            posted = true;
        } catch (...) {
            // out of memory: the askers' deadlines still apply
        }
    }
    if (!posted) {
        std::lock_guard<std::mutex> lk2(m_);
        post_pending_ = false;
    }
}

void reply_table::arm_room(const reply_ticket& t) {
    std::lock_guard<std::mutex> lk(m_);
    entry& e = entries_[t.index];
    if (e.gen != t.gen) return;
    e.room = true;
    e.poked = false;
}

bool reply_table::start_waiting_room(const reply_ticket& t) {
    std::lock_guard<std::mutex> lk(m_);
    entry& e = entries_[t.index];
    if (e.gen != t.gen || e.poked) return false;
    e.waiting = true;
    return true;
}

bool reply_table::stop_waiting_room(const reply_ticket& t) noexcept {
    std::lock_guard<std::mutex> lk(m_);
    entry& e = entries_[t.index];
    if (e.gen != t.gen) return false;
    e.waiting = false;
    bool p = e.poked;
    e.poked = false;
    return p;
}

void reply_table::disarm_room(const reply_ticket& t) noexcept {
    std::lock_guard<std::mutex> lk(m_);
    entry& e = entries_[t.index];
    if (e.gen != t.gen) return;
    e.room = false;
    e.poked = false;
}

void reply_table::poke(const reply_ticket& t) noexcept {
    bool post = false;
    {
        std::lock_guard<std::mutex> lk(m_);
        if (t.index >= entries_.size()) return;
        entry& e = entries_[t.index];
        if (e.gen != t.gen || !e.open || !e.room || e.poked) return;
        e.poked = true;
        if (!e.waiting) return; // it looks before it sleeps
        post = wake_locked(e, t.index);
    }
    if (post) post_ready();
}

void reply_table::run_ready() noexcept {
    std::lock_guard<std::mutex> lk(m_);
    post_pending_ = false;
    for (const woken& w : woken_) {
        entry& e = entries_[w.index];
        if (e.gen == w.gen && e.open && e.waiting) {
            e.waiting = false;
            e.asker->signal_external();
        }
    }
    woken_.clear();
}

void reply_table::detach() noexcept {
    std::scoped_lock lk(post_m_, m_); // no post in progress (post_held), none after
    sched_ = nullptr;
    for (auto& e : entries_)
        if (e.open) {
            ++e.gen;
            e.open = false;
        }
    woken_.clear();
}

std::size_t reply_table::open_count() {
    std::lock_guard<std::mutex> lk(m_);
    return open_;
}

service_registry& registry_of(component& c) { return c.sched()->services(); }

} // namespace detail

std::vector<std::string> service_registry::names() const {
    std::vector<std::string> v;
    for (auto& [k, s] : services_)
        if (!s.remote) v.push_back(k);
    return v;
}

// ---- services across schedulers ---------------------------------------------------

namespace {

// On the service's scheduler: moves requests from the port's transit queue
// into the service's inbox with ordinary sends, so the inbox's bound holds
// and a full inbox parks the pump (not the remote askers' threads). It takes
// at most what the inbox has room for, so little waits outside the bounds.
class service_pump : public component {
public:
    explicit service_pump(std::shared_ptr<detail::service_port> p) : port_(std::move(p)) { port_->pump = this; }
    ~service_pump() override {
        teardown_now(); // the frame (and any batch in it) goes while port_ is whole
        if (port_->pump == this) port_->pump = nullptr;
    }
    std::string type_name() const override { return "service_pump"; }

protected:
    task main() override {
        std::vector<message> batch;
        for (;;) {
            std::size_t room = port_->limit();
            if (inbox* t = out().final_inbox()) room = t->full() ? 1 : t->limit() - t->size();
            bool open = port_->take(batch, room);
            for (auto& m : batch) co_await send_message(std::move(m));
            batch.clear();
            if (!open) co_return;
            // A push after take() posts a wake-up, which signal_external()
            // remembers if it comes before this wait: none is lost.
            if (port_->queued() == 0) co_await wait(ev_external);
        }
    }

private:
    std::shared_ptr<detail::service_port> port_;
};

} // namespace

void service_directory::register_service(std::string name, component& c, std::string inbox_name,
                                         std::size_t transit_limit) {
    scheduler* home = c.sched();
    if (!home || c.state() != component_state::active)
        throw bad_state("service \"" + name + "\": register an active component");
    {
        std::lock_guard<std::mutex> lk(m_);
        auto it = ports_.find(name);
        if (it != ports_.end() && !it->second->closed())
            throw service_already_exists("service \"" + name + "\" is already registered");
    }
    service_registry& reg = home->services();
    reg.register_service(name, c, inbox_name);
    auto& entry = reg.services_.find(name)->second;
    try {
        auto port = std::make_shared<detail::service_port>(*home, transit_limit ? transit_limit : entry.box->limit());
        auto pump = std::make_unique<service_pump>(port);
        component::link({*pump, "outbox"}, {c, box_name(std::string_view(entry.inbox))});
        pump->set_tag(name);
        home->spawn(std::move(pump));
        entry.port = port;
        std::lock_guard<std::mutex> lk(m_);
        ports_[name] = std::move(port);
    } catch (...) {
        reg.deregister(name);
        throw;
    }
}

void register_service_in(service_directory* group, std::string name, component& c, std::string inbox_name) {
    if (group) {
        group->register_service(std::move(name), c, std::move(inbox_name));
        return;
    }
    if (!c.sched()) throw bad_state("service \"" + name + "\": register an active component");
    c.sched()->services().register_service(std::move(name), c, std::move(inbox_name));
}

std::shared_ptr<detail::service_port> service_directory::find(std::string_view name) {
    std::lock_guard<std::mutex> lk(m_);
    auto it = ports_.find(name);
    if (it == ports_.end()) return nullptr;
    if (it->second->closed()) {
        ports_.erase(it);
        return nullptr;
    }
    return it->second;
}

std::vector<std::string> service_directory::names() {
    std::lock_guard<std::mutex> lk(m_);
    std::vector<std::string> v;
    for (auto& [k, p] : ports_)
        if (!p->closed()) v.push_back(k);
    return v;
}

namespace detail {

service_port::push_result service_port::push(message& m, const reply_ticket* waiter) {
    std::lock_guard<std::mutex> lk(m_);
    if (!home_) return push_result::closed;
    if (q_.size() >= limit_) {
        if (waiter) waiters_.push_back(*waiter);
        return push_result::full;
    }
    if (!wake_pending_) {
        // One post per batch: the pump clears the flag when it takes the queue.
        // Posted under the lock so close() cannot free home_ meanwhile.
        home_->post([self = shared_from_this()] {
            if (self->pump && self->pump->state() == component_state::active) self->pump->signal_external();
        });
        wake_pending_ = true;
    }
    q_.push_back(std::move(m));
    return push_result::pushed;
}

void service_port::forget(const reply_ticket& w) noexcept {
    std::lock_guard<std::mutex> lk(m_);
    std::erase_if(waiters_,
                  [&](const reply_ticket& x) { return x.table == w.table && x.index == w.index && x.gen == w.gen; });
}

bool service_port::closed() const {
    std::lock_guard<std::mutex> lk(m_);
    return home_ == nullptr;
}

std::size_t service_port::queued() const {
    std::lock_guard<std::mutex> lk(m_);
    return q_.size();
}

bool service_port::take(std::vector<message>& out, std::size_t max) {
    std::vector<reply_ticket> w;
    {
        std::lock_guard<std::mutex> lk(m_);
        wake_pending_ = false;
        if (!home_) return false;
        std::size_t n = std::min(max, q_.size());
        if (n == q_.size()) {
            out.swap(q_);
        } else {
            for (std::size_t i = 0; i < n; ++i) out.push_back(std::move(q_[i]));
            q_.erase(q_.begin(), q_.begin() + static_cast<std::ptrdiff_t>(n));
        }
        if (n && !waiters_.empty()) w.swap(waiters_);
    }
    poke_all(w);
    return true;
}

void service_port::close() noexcept {
    std::vector<message> q;
    std::vector<reply_ticket> w;
    {
        std::lock_guard<std::mutex> lk(m_);
        if (!home_) return;
        home_ = nullptr;
        q.swap(q_);
        w.swap(waiters_);
    }
    q.clear();   // each request's destructor answers service_ended
    poke_all(w); // they find the port closed
    if (pump && pump->state() == component_state::active) pump->signal_external();
}

void service_port::poke_all(std::vector<reply_ticket>& w) noexcept {
    for (const reply_ticket& t : w) t.table->poke(t);
    w.clear();
}

// The remote half of ask(): push the request into the port, waiting for
// room (poked by the pump) unless fail_if_full; within() bounds the wait.
subtask<remote_push> push_remote(component& self, service_port& port, message& m, const reply_ticket& t,
                                 const ask_options& opt, std::optional<time_point> deadline, std::string_view name) {
    reply_table& table = *t.table;
    remote_push out;
    // Leaves no waiter behind however this frame ends (a stop destroys it).
    struct forget_guard {
        service_port& p;
        const reply_ticket& t;
        bool armed = false;
        ~forget_guard() {
            if (armed) p.forget(t);
        }
    } guard{port, t};
    scheduler& sched = *self.sched();
    const std::uint8_t events = component::ev_external | (opt.cancel_if ? component::ev_control : 0);
    for (;;) {
        table.arm_room(t);
        auto r = port.push(m, opt.fail_if_full ? nullptr : &t);
        if (r == service_port::push_result::pushed) break;
        if (r == service_port::push_result::closed) {
            out.error = service_error{service_errc::service_ended, "service \"" + std::string(name) + "\" ended"};
            break;
        }
        if (opt.fail_if_full) {
            out.error = service_error{service_errc::full, "service \"" + std::string(name) + "\" is full"};
            break;
        }
        guard.armed = true;
        if (opt.cancel_if && opt.cancel_if(self)) {
            out.error = service_error{service_errc::cancelled, "gave up waiting for \"" + std::string(name) + "\""};
            break;
        }
        std::optional<duration> left;
        if (deadline) {
            time_point now = sched.now();
            if (now >= *deadline) {
                out.error = service_error{service_errc::timeout, "no room in \"" + std::string(name) + "\" in time"};
                break;
            }
            left = *deadline - now;
        }
        if (!table.start_waiting_room(t)) { // poked already: the pump took the waiters
            guard.armed = false;
            continue;
        }
        auto w = self.wait(events, left);
        co_await w;
        if (table.stop_waiting_room(t)) {
            guard.armed = false;
        } else if (!deadline || sched.now() < *deadline) {
            out.other_signal = true; // raised again by ask() before it returns
        }
    }
    table.disarm_room(t);
    co_return out;
}

} // namespace detail

reply_batch::reply_batch() noexcept {
    state_.outer = detail::held_replies;
    detail::held_replies = &state_;
}

reply_batch::~reply_batch() {
    detail::held_replies = state_.outer;
    if (state_.outer) {
        try {
            auto& to = state_.outer->tables;
            to.insert(to.end(), state_.tables.begin(), state_.tables.end());
            return;
        } catch (...) {
            // out of memory: post them now
        }
    }
    for (auto& t : state_.tables) t->post_held();
}

} // namespace kamaelia
