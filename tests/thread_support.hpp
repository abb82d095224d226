// Helpers for tests that run more than one thread. Deadlines are generous
// and only there so that a hang fails the test instead of stalling the run;
// nothing depends on timing to pass.
#pragma once

#include <kamaelia/core/scheduler.hpp>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace kamaelia::test {

inline constexpr std::chrono::seconds liveness_deadline{20};

// Runs `s` on another thread until every component has finished. False if it
// was still running at the deadline (it is stopped then).
inline bool run_within(scheduler& s, std::chrono::seconds limit = liveness_deadline) {
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
    std::thread t([&] {
        s.run();
        std::lock_guard<std::mutex> lk(m);
        done = true;
        cv.notify_all();
    });
    bool ok;
    {
        std::unique_lock<std::mutex> lk(m);
        ok = cv.wait_for(lk, limit, [&] { return done; });
    }
    if (!ok) s.stop();
    t.join();
    return ok;
}

// A one-shot event another thread waits for (with a deadline).
class latch_flag {
public:
    void set() {
        std::lock_guard<std::mutex> lk(m_);
        set_ = true;
        cv_.notify_all();
    }
    bool wait(std::chrono::seconds limit = liveness_deadline) { return wait_for(limit); }
    template <class Rep, class Period>
    bool wait_for(std::chrono::duration<Rep, Period> limit) {
        std::unique_lock<std::mutex> lk(m_);
        return cv_.wait_for(lk, limit, [&] { return set_; });
    }
    bool is_set() {
        std::lock_guard<std::mutex> lk(m_);
        return set_;
    }

private:
    std::mutex m_;
    std::condition_variable cv_;
    bool set_ = false;
};

// Runs a scheduler with run_forever() on its own thread for the test's scope.
class forever_runner {
public:
    explicit forever_runner(scheduler& s)
        : s_(s),
          t_([this] {
              s_.run_forever();
              done_.set();
          }) {}
    ~forever_runner() { stop(); }
    void stop() {
        if (!t_.joinable()) return;
        // A stop() racing with the loop's I/O poll can be lost (core issue):
        // repeat it until the loop has returned.
        do {
            s_.stop();
        } while (!done_.wait_for(std::chrono::milliseconds(20)));
        t_.join();
    }

private:
    scheduler& s_;
    latch_flag done_;
    std::thread t_;
};

} // namespace kamaelia::test
