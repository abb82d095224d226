// A deterministic scheduler for unit tests (CAF's test coordinator, in
// Kamaelia's terms): a manual clock, and the scheduler stepped by hand.
//
//   kamaelia::test::fixture f;
//   auto& a = f.spawn<my_component>();
//   f.settle();                      // run until nothing is queued
//   f.advance(std::chrono::seconds(5)); // move the clock and settle
#pragma once

#include <kamaelia/core/component.hpp>
#include <kamaelia/core/scheduler.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace kamaelia::test {

struct fixture {
    manual_clock clock;
    scheduler sched{clock};
    // Components spawned by the test stay alive (finished, inspectable)
    // until the fixture goes; declared after the scheduler, they go first.
    std::vector<std::unique_ptr<component>> owned;

    template <class C, class... A>
    C& spawn(A&&... a) {
        auto c = std::make_unique<C>(std::forward<A>(a)...);
        C& ref = *c;
        owned.push_back(std::move(c));
        ref.activate(sched);
        return ref;
    }
    // Activates an object the test owns (it must outlive the scheduler's use).
    template <class C>
    C& activate(C& c) {
        c.activate(sched);
        return c;
    }
    bool step() { return sched.run_once(); }
    std::size_t settle(std::size_t max_cycles = 1'000'000) { return sched.run_until_idle(max_cycles); }
    void advance(duration d) {
        clock.advance(d);
        settle();
    }
};

// Records everything that reaches its inbox and control, in order.
struct collector : component {
    std::vector<message> items;
    std::vector<ipc> controls;
    bool stop_on_end = true;
    task main() override {
        for (;;) {
            while (auto m = recv_message("inbox")) items.push_back(std::move(*m));
            while (auto c = recv_message("control")) {
                if (const ipc* i = c->peek<ipc>()) {
                    controls.push_back(*i);
                    if (stop_on_end && i->ends()) {
                        while (auto m = recv_message("inbox")) items.push_back(std::move(*m));
                        co_return;
                    }
                }
            }
            co_await wait_any();
        }
    }
    template <class T>
    std::vector<T> values() const {
        std::vector<T> v;
        for (auto& m : items)
            if (auto* p = m.peek<T>()) v.push_back(*p);
        return v;
    }
};

// Takes nothing until released (a consumer that has stalled), then
// records like test::collector.
struct gate : component {
    bool open = false;
    std::vector<message> items;
    std::vector<ipc> controls;
    task main() override {
        if (!open) co_await wait_for("control"); // inbox data does not wake it
        for (;;) {
            while (auto m = recv_message("inbox")) items.push_back(std::move(*m));
            bool ended = false;
            while (auto c = recv_message("control")) {
                const ipc* i = c->peek<ipc>();
                if (!i || i->kind == ipc_kind::notify) continue; // the release itself
                controls.push_back(*i);
                ended = ended || i->ends();
            }
            if (ended) {
                while (auto m = recv_message("inbox")) items.push_back(std::move(*m));
                co_return;
            }
            co_await wait_any();
        }
    }
    void release() {
        open = true;
        deliver(*this, "control", message(ipc{ipc_kind::notify, "open", 0}));
    }
    template <class T>
    std::vector<T> values() const {
        std::vector<T> v;
        for (auto& m : items)
            if (auto* p = m.peek<T>()) v.push_back(*p);
        return v;
    }
};

// Sends the given values, then producer_finished on "signal" (unless told not to).
template <class T>
struct feeder : component {
    std::vector<T> values;
    bool finish = true;
    explicit feeder(std::vector<T> v, bool finish_after = true) : values(std::move(v)), finish(finish_after) {}
    task main() override {
        for (auto& v : values) co_await send(v);
        if (finish) co_await send(producer_finished(), "signal");
    }
};

} // namespace kamaelia::test
