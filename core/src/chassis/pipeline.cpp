#include <kamaelia/chassis/pipeline.hpp>
#include <kamaelia/core/scheduler.hpp>

#include "common.hpp"

#include <string>

namespace kamaelia {

void pipeline::add_stage(std::unique_ptr<component> c) {
    if (!c) throw bad_component("pipeline: null stage");
    stages_.push_back(&add_child(std::move(c)));
    options_.push_back(std::exchange(pending_, stage_options{}));
    has_pending_ = false;
}

void pipeline::set_pending_limit(long long n) {
    if (n < 1 || n > static_cast<long long>(UINT32_MAX))
        throw bad_state("pipeline: an inbox limit must be between 1 and 2^32-1, not " + std::to_string(n));
    pending_.limit = static_cast<std::uint32_t>(n);
    has_pending_ = true;
}

void pipeline::check_trailing_options() const {
    if (has_pending_) throw bad_state("pipeline: an inbox limit or policy must come before a stage");
}

void pipeline::wire() {
    const std::size_t n = stages_.size();
    for (std::size_t i = 0; i < n; ++i)
        if (options_[i].limit) stages_[i]->in("inbox").set_limit(options_[i].limit);
    for (std::size_t i = 0; i + 1 < n; ++i) {
        link({*stages_[i], "outbox"}, {*stages_[i + 1], "inbox"}, options_[i + 1].policy);
        link({*stages_[i], "signal"}, {*stages_[i + 1], "control"});
    }
    component& first = *stages_.front();
    component& last = *stages_.back();
    link({*this, "inbox"}, {first, "inbox"}, options_.front().policy);
    link({*this, "control"}, {first, "control"});
    if (circular_) {
        link({last, "outbox"}, {first, "inbox"}, options_.front().policy);
        link({last, "signal"}, {first, "control"});
    } else {
        link({last, "outbox"}, {*this, "outbox"});
        link({last, "signal"}, {*this, "signal"});
    }
}

// Removes the stages that have ended (which frees senders parked on their
// inboxes). Nothing the stages upstream of an ended stage produce can go
// anywhere any more, so they are told to stop, like a Unix pipeline's
// writers get SIGPIPE: a stage that ends early or fails (its downstream
// hears of a failure through its signal) cannot leave the pipeline hanging.
// In the normal cascade the upstream stages have already ended. A ring has
// no upstream: its stages hear it all the way round.
void pipeline::reap_stages() {
    for (std::size_t i = 0; i < stages_.size(); ++i) {
        component* c = stages_[i];
        if (!c || !c->finished()) continue;
        if (!circular_) {
            std::string why = "stage " + c->name() + (c->failed() ? " failed" : " ended");
            for (std::size_t j = 0; j < i; ++j)
                if (stages_[j] && !stages_[j]->finished())
                    detail::push_control(*stages_[j], shutdown_microprocess(why));
        }
        stages_[i] = nullptr;
        remove_child(*c);
    }
}

task pipeline::main() {
    if (stages_.empty()) co_return;
    wire();
    for (component* c : stages_) c->activate(*sched());
    for (;;) {
        reap_stages();
        component* first_alive = nullptr;
        for (component* c : stages_)
            if (c) {
                first_alive = c;
                break;
            }
        if (!first_alive) break;
        if (!stages_.front()) {
            // c1 has ended, so its links are gone and our inbox and control
            // keep their own messages: nobody can read the data; control
            // still goes to the stages that run.
            detail::discard_inbox(*this, "inbox");
            while (auto m = recv_message("control")) detail::push_control(*first_alive, std::move(*m));
        }
        co_await wait(ev_inbox | ev_children);
    }
}

} // namespace kamaelia
