// Shared by the cross-scheduler link tests (test_xlink.cpp, test_xlink_ring.cpp):
// a sink that reads only once let in, and small helpers.
#pragma once

#include "thread_support.hpp"

#include <kamaelia/core/component.hpp>

#include <algorithm>
#include <chrono>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

namespace kamaelia::test {

// Reads "inbox" only while open (the test opens it with signal_external()),
// records every control message, ends after producer_finished once "inbox"
// is empty. `max_seen` is the most messages it ever found waiting.
struct gate_sink : component {
    bool open = false;
    bool end_on_finish = true;
    std::vector<int> got;
    std::vector<ipc_kind> controls;
    std::size_t max_seen = 0;
    std::size_t data_when_finished = 0; // messages received before producer_finished arrived
    task main() override {
        bool finish_seen = false;
        for (;;) {
            max_seen = std::max(max_seen, in().size());
            // Data first: what was sent before the end message is here
            // before it (the order the test checks).
            if (open)
                while (auto v = recv<int>()) got.push_back(*v);
            while (auto m = recv_message("control")) {
                if (const ipc* c = m->peek<ipc>()) {
                    controls.push_back(c->kind);
                    if (c->kind == ipc_kind::producer_finished && !finish_seen) {
                        finish_seen = true;
                        data_when_finished = got.size() + in().size();
                    }
                }
            }
            if (finish_seen && end_on_finish && in().empty()) co_return;
            if (open) {
                co_await wait_any();
            } else {
                co_await wait(ev_external | ev_control);
            }
        }
    }
    void let_in() {
        open = true;
        signal_external();
    }
};

inline bool ascending(const std::vector<int>& v) {
    for (std::size_t i = 1; i < v.size(); ++i)
        if (v[i] <= v[i - 1]) return false;
    return true;
}

// [from, to). Not named iota_vec: chassis_support.hpp has an inclusive
// iota_vec, and two inline functions of one name in one program are an ODR
// violation (the linker keeps either body).
inline std::vector<int> range_vec(int from, int to) {
    std::vector<int> v;
    for (int i = from; i < to; ++i) v.push_back(i);
    return v;
}

// Activated, not spawned: the test reads them after the group has finished
// (a spawned component is deleted when it ends).
template <class C, class... A>
C& keep(std::vector<std::unique_ptr<component>>& kept, scheduler& s, A&&... a) {
    auto c = std::make_unique<C>(std::forward<A>(a)...);
    C& ref = *c;
    kept.push_back(std::move(c));
    ref.activate(s);
    return ref;
}

// Polls `p` (another thread's progress) until true or the liveness deadline.
template <class Pred>
bool eventually(Pred p) {
    auto deadline = std::chrono::steady_clock::now() + liveness_deadline;
    while (!p() && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return p();
}

} // namespace kamaelia::test
