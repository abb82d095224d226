#include <kamaelia/chassis/inactivity_chassis.hpp>

namespace kamaelia {

inactivity_chassis::inactivity_chassis(duration timeout, std::unique_ptr<component> child)
    : timeout_(timeout),
      child_(&add_child(std::move(child))) {
    // Input goes through us (it is the activity); output needs no watching:
    // the child's outbox and signal are ours.
    declare_outbox("tochild", "input on its way to the child");
    link({*this, "tochild"}, {*child_, "inbox"});
    link({*child_, "outbox"}, {*this, "outbox"});
    link({*child_, "signal"}, {*this, "signal"});
}

task inactivity_chassis::main() {
    child_->activate(*sched());
    time_point deadline = sched()->now() + timeout_;
    bool told = false;
    while (!children_done()) {
        bool active = false;
        while (auto m = recv_message("inbox")) {
            active = true;
            // The child's inbox is bounded: wait for room as any sender does.
            bool delivered = co_await send_message(std::move(*m), "tochild");
            if (!delivered) break;
        }
        while (auto m = recv_message("control")) deliver(*child_, "control", std::move(*m));
        if (active) deadline = sched()->now() + timeout_;
        if (!told && sched()->now() >= deadline) {
            timed_out_ = true;
            told = true;
            deliver(*child_, "control", message(shutdown_microprocess("inactivity timeout")));
        }
        if (children_done()) break;
        if (told) {
            co_await wait(ev_inbox | ev_children);
        } else {
            co_await wait(ev_inbox | ev_children, deadline - sched()->now());
        }
    }
}

} // namespace kamaelia
