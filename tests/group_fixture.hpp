// Several schedulers stepped from one thread on one manual clock: the
// deterministic counterpart of kamaelia::scheduler_group for logic tests.
//
//   kamaelia::test::group_fixture g(2);
//   auto& a = g.spawn<my_component>(0);   // on scheduler 0
//   auto& b = g.spawn<my_component>(1);   // on scheduler 1
//   g.settle();                           // round robin until all are idle
//   g.advance(std::chrono::seconds(5));   // move the shared clock and settle
#pragma once

#include <kamaelia/core/component.hpp>
#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/core/services.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

namespace kamaelia::test {

struct group_fixture {
    manual_clock clock;
    // Services asked from any of the schedulers (as scheduler_group's).
    service_directory services;
    std::vector<std::unique_ptr<scheduler>> scheds;
    // Declared after the schedulers: the components go first.
    std::vector<std::unique_ptr<component>> owned;

    explicit group_fixture(std::size_t n) {
        for (std::size_t i = 0; i < n; ++i) {
            scheds.push_back(std::make_unique<scheduler>(clock));
            scheds.back()->services().attach(&services);
        }
    }
    scheduler& operator[](std::size_t i) { return *scheds.at(i); }

    template <class C, class... A>
    C& spawn(std::size_t on, A&&... a) {
        auto c = std::make_unique<C>(std::forward<A>(a)...);
        C& ref = *c;
        owned.push_back(std::move(c));
        ref.activate(*scheds.at(on));
        return ref;
    }
    // One cycle of every scheduler, in index order. True if any ran.
    bool step() {
        bool any = false;
        for (auto& s : scheds) any = s->run_once() || any;
        return any;
    }
    std::size_t settle(std::size_t max_rounds = 1'000'000) {
        std::size_t n = 0;
        while (n < max_rounds && step()) ++n;
        return n;
    }
    void advance(duration d) {
        clock.advance(d);
        settle();
    }
};

} // namespace kamaelia::test
