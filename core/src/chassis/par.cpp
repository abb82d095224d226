#include <kamaelia/chassis/par.hpp>
#include <kamaelia/core/scheduler.hpp>

#include "common.hpp"

#include <string>

namespace kamaelia {

namespace {

// Holds one of par's children. Why not make it par's child directly: par
// parks on the child's inbox while it is full (flow-controlled broadcast),
// and a sender parked on an inbox is released only when that inbox is
// destroyed. If the child ended while par was parked on it, par would be the
// one that has to destroy it, and could never wake to do so. The holder
// destroys its child the moment it ends, which releases par.
class par_branch final : public component {
public:
    explicit par_branch(std::unique_ptr<component> c) : child_(&add_child(std::move(c))) {}

    bool child_running() const noexcept { return child_ && !child_->finished(); }
    bool child_failed() const noexcept { return failed_; }
    const std::string& failure() const noexcept { return failure_; }

protected:
    task main() override {
        component& c = *child_;
        link({*this, "inbox"}, {c, "inbox"});
        link({*this, "control"}, {c, "control"});
        link({c, "outbox"}, {*this, "outbox"});
        c.activate(*sched());
        co_await c.done();
        failed_ = c.failed();
        if (failed_) failure_ = c.name() + ": " + c.error_text();
        child_ = nullptr;
        remove_child(c);
    }

private:
    component* child_;
    bool failed_ = false;
    std::string failure_;
};

par_branch& as_branch(component* c) { return static_cast<par_branch&>(*c); }

} // namespace

void par::add_branch_ptr(std::unique_ptr<component> c) {
    if (state() != component_state::created) throw bad_state("par: " + name() + " is already running");
    if (!c) throw bad_component("par: null child");
    component& h = add_child(std::make_unique<par_branch>(std::move(c)));
    branches_.push_back({&h, {}});
}

bool par::running(const branch& b) const noexcept {
    return b.holder && !b.holder->finished() && as_branch(b.holder).child_running();
}

void par::wire() {
    for (std::size_t i = 0; i < branches_.size(); ++i) {
        branch& b = branches_[i];
        b.feed = add_outbox("branch_" + std::to_string(i + 1), "broadcast of inbox to child " + std::to_string(i + 1));
        link({*this, box_name(std::string_view(b.feed))}, {*b.holder, "inbox"});
        link({*b.holder, "outbox"}, {*this, "outbox"});
    }
}

void par::forward_control() {
    while (auto m = recv_message("control")) {
        if (const ipc* i = m->peek<ipc>()) end_.note(*i);
        for (auto& b : branches_)
            if (running(b)) detail::push_control(*b.holder, detail::duplicate(*m));
    }
}

void par::reap() {
    for (auto& b : branches_) {
        if (!b.holder || !b.holder->finished()) continue;
        par_branch& h = as_branch(b.holder);
        if (h.child_failed() || h.failed()) {
            end_.note_failure(h.child_failed() ? h.failure() : h.name() + ": " + h.error_text());
            for (auto& o : branches_)
                if (&o != &b && running(o))
                    detail::push_control(*o.holder, shutdown_microprocess("a sibling in " + name() + " failed"));
        }
        b.holder = nullptr;
        remove_child(h);
    }
}

task par::main() {
    wire();
    for (auto& b : branches_) b.holder->activate(*sched());
    for (;;) {
        // Data before control: a finish sent after the data must reach the
        // children after it.
        while (auto m = recv_message("inbox")) {
            for (auto& b : branches_) {
                if (!running(b)) continue;
                message copy = detail::duplicate(*m);
                co_await send_message(std::move(copy), box_name(std::string_view(b.feed)));
            }
        }
        forward_control();
        reap();
        bool any = false;
        for (auto& b : branches_) any = any || b.holder;
        if (!any) break;
        co_await wait(ev_inbox | ev_children);
    }
    send_forced(message(end_.result(id())), "signal");
}

} // namespace kamaelia
