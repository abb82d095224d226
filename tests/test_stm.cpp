// STM: versioned check-out and all-or-nothing commit (docs/ORIGINAL.md, Core: STM).
#include "fixture.hpp"
#include "thread_support.hpp"

#include <kamaelia/core/stm.hpp>

#include <catch2/catch.hpp>

#include <any>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

using namespace kamaelia;
using kamaelia::test::latch_flag;
using namespace std::chrono_literals;

TEST_CASE("stm: keys are created on first use with version 0", "[stm]") {
    stm::store<int> s;
    auto v = s.checkout("x");
    REQUIRE(v.key() == "x");
    REQUIRE(v.version() == 0);
    REQUIRE(*v == 0);
    REQUIRE_FALSE(v.modified());
    v.set(5);
    v.commit();
    REQUIRE(v.version() == 1);
    // The same copy can be edited and committed again.
    v.edit() += 1;
    v.commit();
    REQUIRE(v.version() == 2);
    auto w = s.checkout("x");
    REQUIRE(*w == 6);
    REQUIRE(w.version() == 2);
    REQUIRE(s.keys() == std::vector<std::string>{"x"});
}

TEST_CASE("stm: concurrent commit on a shared key: exactly one succeeds", "[stm]") {
    stm::store<std::string> s;
    auto a = s.checkout("greeting");
    auto b = s.checkout("greeting");
    a.set("hello");
    b.set("bonjour");
    a.commit();
    REQUIRE_THROWS_AS(b.commit(), stm::concurrent_update);
    REQUIRE(*s.checkout("greeting") == "hello");
    // The loser redoes its transaction on a fresh copy.
    auto c = s.checkout("greeting");
    c.set("bonjour");
    c.commit();
    REQUIRE(*s.checkout("greeting") == "bonjour");
}

TEST_CASE("stm: a collection commit is all or nothing", "[stm]") {
    stm::store<int> s;
    auto setup = s.checkout({"a", "b"});
    setup["a"].set(100);
    setup["b"].set(100);
    setup.commit();

    auto t = s.checkout({"a", "b"});
    t["a"].set(*t["a"] - 30);
    t["b"].set(*t["b"] + 30);
    // Someone else changes "b" first.
    auto other = s.checkout("b");
    other.set(1);
    other.commit();
    REQUIRE_THROWS_AS(t.commit(), stm::concurrent_update);
    // Nothing of t was written: "a" is untouched.
    auto a = s.checkout("a");
    REQUIRE(*a == 100);
    REQUIRE(a.version() == 1);
    REQUIRE(*s.checkout("b") == 1);
}

TEST_CASE("stm: keys only read are validated but not rewritten", "[stm]") {
    stm::store<int> s;
    // Two transactions read the shared "rate" and write different keys:
    // both commit (the original re-wrote "rate" and the second one failed).
    auto t1 = s.checkout({"rate", "x"});
    auto t2 = s.checkout({"rate", "y"});
    t1["x"].set(*t1["rate"] + 1);
    t2["y"].set(*t2["rate"] + 2);
    t1.commit();
    t2.commit();
    REQUIRE(s.checkout("rate").version() == 0);
    REQUIRE(*s.checkout("x") == 1);
    REQUIRE(*s.checkout("y") == 2);
    // But a read key that a writer changed meanwhile does invalidate.
    auto t3 = s.checkout({"rate", "z"});
    t3["z"].set(*t3["rate"] * 10);
    auto writer = s.checkout("rate");
    writer.set(7);
    writer.commit();
    REQUIRE_THROWS_AS(t3.commit(), stm::concurrent_update);
    REQUIRE(s.checkout("z").version() == 0);
    // An unmodified single copy commits as a pure validation.
    auto r = s.checkout("rate");
    r.commit();
    REQUIRE(r.version() == 1);
}

TEST_CASE("stm: collection access and duplicates", "[stm]") {
    stm::store<std::any> s; // untyped values, as in Axon
    auto c = s.checkout({"name", "age", "name"});
    REQUIRE(c.size() == 2);
    REQUIRE(c.contains("age"));
    REQUIRE_FALSE(c.contains("height"));
    REQUIRE_THROWS_AS(c["height"], bad_state);
    c["name"].set(std::string("ada"));
    c["age"].set(36);
    c.commit();
    auto d = s.checkout({"name", "age"});
    REQUIRE(std::any_cast<std::string>(*d["name"]) == "ada");
    REQUIRE(std::any_cast<int>(*d["age"]) == 36);
    std::vector<std::string> keys;
    for (auto& v : d) keys.push_back(v.key());
    REQUIRE(keys == std::vector<std::string>{"age", "name"});
}

namespace {
// A value whose copy from a marked source (v == -1) can be held up, so that a
// check-out holds that key's lock for as long as the test wants (the store
// copies into and out of its cells by assignment, under the key's lock).
struct slow_copy {
    static inline std::mutex m;
    static inline std::condition_variable cv;
    static inline bool hold = false;
    static inline latch_flag* inside = nullptr;
    int v = 0;
    slow_copy() = default;
    slow_copy(const slow_copy&) = default;
    slow_copy& operator=(const slow_copy& o) {
        if (o.v == -1) {
            std::unique_lock<std::mutex> lk(m);
            if (hold) {
                if (inside) inside->set();
                cv.wait(lk, [] { return !hold; });
            }
        }
        v = o.v;
        return *this;
    }
};
} // namespace

TEST_CASE("stm: a held lock is busy_retry for components, a wait for threads", "[stm][threads]") {
    stm::store<slow_copy> s;
    {
        auto init = s.checkout("k");
        init.edit().v = -1; // copies of this value can be held up
        init.commit();
    }
    auto pre = s.checkout("k"); // taken before the lock is held
    pre.edit().v = 3;
    latch_flag inside;
    {
        std::lock_guard<std::mutex> lk(slow_copy::m);
        slow_copy::hold = true;
        slow_copy::inside = &inside;
    }
    // This check-out copies the value while holding the key's lock, and stays there.
    std::thread holder([&] { auto v = s.checkout("k", stm::lock_mode::block); });
    REQUIRE(inside.wait());

    // Components only try: busy_retry, for check-outs and commits alike.
    REQUIRE_THROWS_AS(s.checkout("k"), stm::busy_retry);
    REQUIRE_THROWS_AS(s.checkout({"a", "k"}), stm::busy_retry);
    REQUIRE_THROWS_AS(pre.commit(), stm::busy_retry);
    // The failed collection released the lock it had taken on "a".
    auto a = s.checkout("a");
    a.set(slow_copy{});
    a.commit();

    // A thread's blocking commit waits for the lock instead.
    std::atomic<bool> committed{false};
    std::thread blocker([&] {
        pre.commit(stm::lock_mode::block);
        committed = true;
    });
    REQUIRE_FALSE(committed.load()); // cannot have happened: the lock is still held
    {
        std::lock_guard<std::mutex> lk(slow_copy::m);
        slow_copy::hold = false;
        slow_copy::inside = nullptr;
    }
    slow_copy::cv.notify_all();
    holder.join();
    blocker.join();
    REQUIRE(committed.load());
    auto k = s.checkout("k");
    REQUIRE(k->v == 3);
    REQUIRE(k.version() == 2);
}

TEST_CASE("stm: many threads hammering counters and transfers", "[stm][threads]") {
    stm::store<long> s;
    constexpr int threads = 4, rounds = 400, accounts = 5;
    std::vector<std::string> names;
    for (int i = 0; i < accounts; ++i) names.push_back("acct" + std::to_string(i));
    {
        auto init = s.checkout(std::vector<std::string>(names));
        for (auto& v : init) v.set(1000);
        init.commit();
    }
    std::atomic<long> conflicts{0}, busy{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) {
        ts.emplace_back([&, t] {
            for (int r = 0; r < rounds; ++r) {
                // Component style: never block, redo on conflict or busy.
                for (;;) {
                    try {
                        auto c = s.checkout("counter");
                        c.edit() += 1;
                        c.commit();
                        break;
                    } catch (const stm::concurrent_update&) {
                        ++conflicts;
                    } catch (const stm::busy_retry&) {
                        ++busy;
                    }
                    std::this_thread::yield();
                }
                // Thread style: blocking locks, atomically() redoes conflicts.
                const std::string& from = names[(t + r) % accounts];
                const std::string& to = names[(t + 2 * r + 1) % accounts];
                if (from == to) continue;
                s.atomically({from, to}, [&](stm::collection<long>& c) {
                    c[from].edit() -= 7;
                    c[to].edit() += 7;
                });
            }
        });
    }
    for (auto& th : ts) th.join();
    REQUIRE(*s.checkout("counter") == threads * rounds);
    auto all = s.checkout(std::vector<std::string>(names));
    long total = 0;
    for (auto& v : all) total += *v;
    REQUIRE(total == 1000L * accounts); // transfers never lose or create money
}

TEST_CASE("stm: wait_for_change wakes a thread when a key it read changes", "[stm][threads]") {
    stm::store<int> s;
    auto seen = s.checkout({"flag"});
    REQUIRE_FALSE(s.wait_for_change(seen, 10ms)); // nothing changes
    std::thread writer([&] {
        auto v = s.checkout("flag", stm::lock_mode::block);
        v.set(1);
        v.commit(stm::lock_mode::block);
    });
    REQUIRE(s.wait_for_change(seen, std::chrono::seconds(20)));
    writer.join();
    REQUIRE(s.commits() == 1);
    REQUIRE(*s.checkout("flag") == 1);
}

namespace {
// Components share a counter through the store; they never block.
struct incrementer : component {
    stm::store<int>* st;
    int times;
    int retries = 0;
    incrementer(stm::store<int>* s, int n) : st(s), times(n) {}
    task main() override {
        for (int i = 0; i < times; ++i) {
            // Check out, then let the others run before committing: conflicts happen.
            auto v = st->checkout("hits");
            co_await yield();
            for (;;) {
                v.edit() += 1;
                bool ok = true;
                try {
                    v.commit();
                } catch (const stm::concurrent_update&) {
                    ok = false;
                }
                if (ok) break;
                ++retries;
                v = st->checkout("hits");
            }
        }
    }
};
} // namespace

TEST_CASE("stm: components on one scheduler retry on conflict and lose nothing", "[stm]") {
    test::fixture f;
    stm::store<int> s;
    incrementer a(&s, 50), b(&s, 50), c(&s, 50);
    f.activate(a);
    f.activate(b);
    f.activate(c);
    f.settle();
    REQUIRE(*s.checkout("hits") == 150);
    // Round robin interleaves the check-outs: the later committers conflict.
    REQUIRE(a.retries + b.retries + c.retries > 0);
}
