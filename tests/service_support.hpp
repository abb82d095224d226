// A request type and a service for the ask() tests (test_service.cpp,
// test_cross_service.cpp).
#pragma once

#include <kamaelia/core/component.hpp>
#include <kamaelia/core/service.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>

namespace kamaelia::test {

struct job {
    int n;
    using reply_type = int;
};

// Doubles n. While `hold` is set it does not read, so requests queue up; a
// message on "go" wakes it after the test changes `hold`.
struct doubler : component {
    bool hold = false;
    std::size_t max_batch = 0;
    std::size_t served = 0;
    std::atomic<std::size_t>* served_total = nullptr; // for a test on another thread
    doubler() { declare_inbox("go"); }
    task main() override {
        while (!shutdown_requested()) {
            while (recv_message("go")) {}
            if (hold) { // requests stay queued: only "go" wakes it
                co_await wait_for("go");
                continue;
            }
            std::size_t n = 0;
            while (auto r = recv<request<job>>()) {
                r->reply(r->body.n * 2);
                ++n;
            }
            served += n;
            if (served_total) served_total->fetch_add(n);
            max_batch = std::max(max_batch, n);
            co_await wait_any();
        }
    }
    void release() {
        hold = false;
        deliver(*this, "go", message(1));
    }
};

} // namespace kamaelia::test
