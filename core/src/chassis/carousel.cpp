#include <kamaelia/chassis/carousel.hpp>
#include <kamaelia/core/scheduler.hpp>

#include "common.hpp"

#include <string>

namespace kamaelia {

namespace {

// Keeps the carousel's input while no child runs. Why a component: input
// left in the carousel's own inbox would make every wait on "next or
// control" return at once (any inbox with data is ready), so the carousel
// would spin. The carousel's inbox passes through to this holder's; when a
// child starts, the holder's inbox is linked to the child's, which moves
// what was held, in order, and then carries the rest.
class carousel_input final : public component {
protected:
    task main() override {
        // Owned by the carousel, which destroys it when it ends.
        for (;;) {
            co_await wait_for("control");
            while (recv_message("control")) {}
        }
    }
};

} // namespace

carousel::carousel(factory make, bool make_first_request) : make_(std::move(make)), first_request_(make_first_request) {
    if (!make_) throw bad_component("carousel: no factory");
    declare_inbox("next", "what the next child is made from (replaces the current one)");
    declare_outbox("requestNext", "\"NEXT\" when the carousel wants something to do");
}

void carousel::read_control() {
    while (auto m = recv_message("control")) {
        bool alive = child_ && !child_->finished();
        if (const ipc* i = m->peek<ipc>(); i && i->ends()) {
            end_.note(*i);
            if (alive && !told_) {
                detail::push_control(*child_, std::move(*m));
                told_ = true;
            }
        } else if (alive) {
            detail::push_control(*child_, std::move(*m));
        }
    }
}

void carousel::start(message& m) {
    std::unique_ptr<component> made = make_(m);
    if (!made) throw bad_component("carousel: the factory returned nothing");
    component& c = add_child(std::move(made));
    child_ = &c;
    ++built_;
    told_ = false;
    link({*holder_, "inbox"}, {c, "inbox"}); // input held so far moves on first
    link({c, "outbox"}, {*this, "outbox"});
    if (end_.finish_requested()) {
        detail::push_control(c, *end_.received);
        told_ = true;
    }
    c.activate(*sched());
}

task carousel::main() {
    holder_ = &add_child(std::make_unique<carousel_input>());
    link({*this, "inbox"}, {*holder_, "inbox"});
    holder_->activate(*sched());
    if (first_request_) {
        std::string next = "NEXT"; // a named local: no temporaries inside co_await (g++ 12)
        co_await send(std::move(next), "requestNext");
    }
    for (;;) {
        read_control();
        if (child_) {
            if (child_->finished()) {
                component& c = *child_;
                bool was_told = told_;
                child_ = nullptr;
                told_ = false;
                if (c.failed()) end_.note_failure(c);
                remove_child(c);
                if (end_.failed()) break;
                // Ended of its own accord, nothing pending: ask for more.
                if (!was_told && !end_.received && data_ready("next") == 0) {
                    std::string next = "NEXT";
                    co_await send(std::move(next), "requestNext");
                }
                continue;
            }
            if (!told_ && data_ready("next") > 0) {
                detail::push_control(*child_, shutdown_microprocess("next"));
                told_ = true;
            }
            if (told_) {
                // Only its end matters now; "next" stays queued until then.
                co_await child_->done();
                continue;
            }
            co_await wait(ev_inbox | ev_children);
            continue;
        }
        if (end_.stop_requested()) break;
        if (auto m = recv_message("next")) {
            start(*m);
            continue;
        }
        if (end_.finish_requested()) break;
        co_await wait_any();
    }
    send_forced(message(end_.result(id())), "signal");
}

} // namespace kamaelia
