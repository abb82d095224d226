#include <kamaelia/chassis/seq.hpp>
#include <kamaelia/core/scheduler.hpp>

#include "common.hpp"

#include <string>

namespace kamaelia {

void seq::push(stage s) {
    if (state() != component_state::created) throw bad_state("seq: " + name() + " is already running");
    if (!s.ready && !s.make) throw bad_component("seq: null stage");
    stages_.push_back(std::move(s));
}

std::unique_ptr<component> seq::take_stage(std::size_t i) {
    stage& s = stages_[i];
    std::unique_ptr<component> c = s.ready ? std::move(s.ready) : s.make();
    if (!c) throw bad_component("seq: the factory of stage " + std::to_string(i + 1) + " returned nothing");
    return c;
}

void seq::start(component& c) {
    // Input waiting in our inbox (carried over, or typed ahead) moves into
    // the stage's inbox as the link is made.
    link({*this, "inbox"}, {c, "inbox"});
    link({c, "outbox"}, {*this, "outbox"});
    c.activate(*sched());
}

void seq::forward_control() {
    while (auto m = recv_message("control")) {
        if (const ipc* i = m->peek<ipc>()) end_.note(*i);
        if (active_ && !active_->finished()) detail::push_control(*active_, std::move(*m));
    }
}

// The finished stage's links are gone: what it had not read is still in its
// inbox (and in senders parked on it), what arrived since is in ours. The
// older part goes first.
void seq::carry_over(component& done) {
    inbox& left = done.in("inbox");
    if (left.empty() && left.parked_senders() == 0) return;
    inbox& mine = in("inbox");
    std::vector<message> later;
    while (!mine.empty()) later.push_back(mine.pop());
    while (!left.empty()) detail::inbox_access::push_forced(mine, left.pop());
    for (auto& m : later) detail::inbox_access::push_forced(mine, std::move(m));
}

task seq::main() {
    for (std::size_t i = 0; i < stages_.size(); ++i) {
        if (end_.received || end_.failed()) break;
        std::unique_ptr<component> made = take_stage(i);
        component& s = add_child(std::move(made));
        active_ = &s;
        ++started_;
        start(s);
        for (;;) {
            forward_control();
            if (s.finished()) break;
            co_await wait(ev_inbox | ev_children);
        }
        if (s.failed()) end_.note_failure(s);
        bool more = i + 1 < stages_.size() && !end_.received && !end_.failed();
        if (more) carry_over(s);
        active_ = nullptr;
        remove_child(s);
    }
    send_forced(message(end_.result(id())), "signal");
}

} // namespace kamaelia
