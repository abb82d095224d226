#include <kamaelia/core/services.hpp>

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

service_registry::~service_registry() { replies_->detach(); }

void service_registry::register_service(std::string name, component& c, std::string inbox_name) {
    if (services_.count(name)) throw service_already_exists("service \"" + name + "\" is already registered");
    if (!c.has_box(box_name(std::string_view(inbox_name))) ||
        !c.find_box(box_name(std::string_view(inbox_name))).is_inbox())
        throw bad_inbox("service \"" + name + "\": " + c.name() + " has no inbox \"" + inbox_name + "\"");
    auto& ib = static_cast<inbox&>(c.find_box(box_name(std::string_view(inbox_name))));
    services_.emplace(std::move(name), service{&c, std::move(inbox_name), &ib});
}

service_registry::service service_registry::retrieve(std::string_view name) const {
    auto it = services_.find(name);
    if (it == services_.end()) throw unknown_service("no service \"" + std::string(name) + "\"");
    return it->second;
}

bool service_registry::has(std::string_view name) const noexcept { return services_.find(name) != services_.end(); }

const service_registry::service* service_registry::find(std::string_view name) const noexcept {
    auto it = services_.find(name);
    return it == services_.end() ? nullptr : &it->second;
}

void service_registry::component_finished(component& c) noexcept {
    if (services_.empty()) return;
    std::vector<inbox*> drain;
    for (auto it = services_.begin(); it != services_.end();) {
        if (it->second.comp == &c) {
            if (std::find(drain.begin(), drain.end(), it->second.box) == drain.end()) drain.push_back(it->second.box);
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
    if (it == services_.end())
        throw multiple_service_deletion("service \"" + std::string(name) + "\" is not registered");
    services_.erase(it);
}

void service_registry::deregister_all(const component& c) noexcept {
    for (auto it = services_.begin(); it != services_.end();) {
        if (it->second.comp == &c) {
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
    scheduler* post_to = nullptr;
    {
        std::lock_guard<std::mutex> lk(m_);
        if (t.index >= entries_.size()) return false;
        entry& e = entries_[t.index];
        if (e.gen != t.gen || !e.open || e.ready) return false; // the asker has gone, or timed out
        e.fn(e.slot, value);
        e.ready = true;
        if (!e.waiting) return true; // the asker looks before it sleeps
        if (e.owner == std::this_thread::get_id()) {
            e.waiting = false;
            e.asker->signal_external();
            return true;
        }
        woken_.push_back({t.index, t.gen});
        if (!post_pending_ && sched_) {
            post_pending_ = true;
            post_to = sched_;
        }
    }
    // One post per batch of replies from another thread. The lambda fits
    // std::function's small buffer; the table outlives it (shared).
    if (post_to) {
        try {
            post_to->post([self = shared_from_this()] { self->run_ready(); });
        } catch (...) {
            std::lock_guard<std::mutex> lk(m_);
            post_pending_ = false; // out of memory: the askers' deadlines still apply
        }
    }
    return true;
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
    std::lock_guard<std::mutex> lk(m_);
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
    for (auto& [k, _] : services_) v.push_back(k);
    return v;
}

} // namespace kamaelia
