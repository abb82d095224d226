// The board's login throttle on its own (a manual clock), and through the
// KDF service that owns it: askers on two schedulers share one count.
#include "thread_support.hpp"

#include <kamaelia/bbs/board.hpp>
#include <kamaelia/bbs/login_throttle.hpp>
#include <kamaelia/bbs/password.hpp>
#include <kamaelia/bbs/service.hpp>
#include <kamaelia/bbs/sqlite_store.hpp>
#include <kamaelia/core/scheduler_group.hpp>
#include <kamaelia/core/service.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <string>

namespace bbs = kamaelia::bbs;
using kamaelia::duration;
using namespace std::chrono_literals;

namespace {

bbs::login_throttle::limits small_limits() {
    bbs::login_throttle::limits l;
    l.max_failures = 3;
    l.window = 10min;
    l.max_throttled = 8;
    return l;
}

} // namespace

TEST_CASE("login throttle: locked after max_failures, for what is left of the window", "[bbs][throttle]") {
    kamaelia::manual_clock clock;
    bbs::login_throttle t(small_limits(), clock);
    const std::string k = bbs::login_throttle::key("harry", "192.0.2.1");
    CHECK(t.locked_for(k) == duration::zero());
    CHECK_FALSE(t.note_failure(k));
    clock.advance(1min);
    CHECK_FALSE(t.note_failure(k));
    CHECK(t.locked_for(k) == duration::zero()); // two of three: not yet
    CHECK(t.note_failure(k));                   // the third locks it
    CHECK(t.locked_for(k) == duration(9min));   // the window began a minute ago
    // The name is folded as the store folds it; the address is not.
    CHECK(t.locked_for(bbs::login_throttle::key("HARRY", "192.0.2.1")) > duration::zero());
    CHECK(t.locked_for(bbs::login_throttle::key("harry", "192.0.2.2")) == duration::zero());
}

TEST_CASE("login throttle: a good login forgets the failures", "[bbs][throttle]") {
    kamaelia::manual_clock clock;
    bbs::login_throttle t(small_limits(), clock);
    const std::string k = bbs::login_throttle::key("harry", "192.0.2.1");
    t.note_failure(k);
    t.note_failure(k);
    t.note_success(k);
    CHECK(t.size() == 0);
    CHECK_FALSE(t.note_failure(k)); // counting starts again
    CHECK_FALSE(t.note_failure(k));
    CHECK(t.locked_for(k) == duration::zero());
}

TEST_CASE("login throttle: the lock and the count expire with the window (injected clock)", "[bbs][throttle]") {
    kamaelia::manual_clock clock;
    bbs::login_throttle t(small_limits(), clock);
    const std::string locked = bbs::login_throttle::key("harry", "192.0.2.1");
    const std::string counted = bbs::login_throttle::key("dick", "192.0.2.1");
    for (int i = 0; i < 3; ++i) t.note_failure(locked);
    t.note_failure(counted);
    t.note_failure(counted);
    clock.advance(10min - 1s);
    CHECK(t.locked_for(locked) == duration(1s));
    clock.advance(1s);
    CHECK(t.locked_for(locked) == duration::zero());
    // Failures of a passed window do not add up with new ones.
    CHECK_FALSE(t.note_failure(counted));
    CHECK_FALSE(t.note_failure(counted));
    CHECK(t.locked_for(counted) == duration::zero());
    CHECK(t.note_failure(counted));
}

TEST_CASE("login throttle: memory stays bounded however many names are tried", "[bbs][throttle]") {
    kamaelia::manual_clock clock;
    auto l = small_limits();
    bbs::login_throttle t(l, clock);
    const std::string locked = bbs::login_throttle::key("harry", "192.0.2.1");
    for (int i = 0; i < 3; ++i) t.note_failure(locked);
    for (int i = 0; i < 10'000; ++i) {
        t.note_failure(bbs::login_throttle::key("user" + std::to_string(i), "192.0.2.9"));
        REQUIRE(t.size() <= l.max_throttled);
    }
    CHECK(t.size() == l.max_throttled);
    // Names still counting went first, oldest first: the lock holds, the
    // newest names are still counted.
    CHECK(t.locked_for(locked) > duration::zero());
    const std::string newest = bbs::login_throttle::key("user9999", "192.0.2.9");
    t.note_failure(newest);
    CHECK(t.note_failure(newest)); // its third
    CHECK(t.size() == l.max_throttled);
    // With every entry locked, the oldest lock goes.
    for (int i = 0; i < 8; ++i)
        for (int n = 0; n < 3; ++n) t.note_failure(bbs::login_throttle::key("locker" + std::to_string(i), "192.0.2.8"));
    CHECK(t.size() == l.max_throttled);
    CHECK(t.locked_for(locked) == duration::zero());
    CHECK(t.locked_for(bbs::login_throttle::key("locker7", "192.0.2.8")) > duration::zero());
    // Windows that have passed are dropped before anything live is evicted.
    clock.advance(l.window);
    t.note_failure(bbs::login_throttle::key("fresh", "192.0.2.3"));
    CHECK(t.size() == 1);
}

namespace {

// A login's password check as the authenticator stage asks it, from
// whichever scheduler the asker runs on.
struct login_asker : kamaelia::component {
    std::string kdf;
    std::string password;
    int tries;
    std::shared_ptr<int> refused_locked; // written on this asker's scheduler, read after join
    kamaelia::test::latch_flag* done;
    login_asker(std::string k, std::string pw, int n, std::shared_ptr<int> r, kamaelia::test::latch_flag* d)
        : kdf(std::move(k)),
          password(std::move(pw)),
          tries(n),
          refused_locked(std::move(r)),
          done(d) {}
    kamaelia::task main() override {
        for (int i = 0; i < tries; ++i) {
            bbs::kdf_request check;
            check.password = password;
            check.stored = bbs::hash_password("right", 1);
            check.login = bbs::login_attempt{"harry", "192.0.2.1", true};
            kamaelia::result<bbs::kdf_answer> r = co_await kamaelia::ask(kdf, std::move(check));
            if (r && r->locked > duration::zero()) ++*refused_locked;
        }
        done->set();
    }
};

} // namespace

TEST_CASE("login throttle: askers on two schedulers share the KDF service's count", "[bbs][threads]") {
    kamaelia::scheduler_group g(2);
    bbs::settings cfg;
    cfg.kdf_iterations = 1;
    cfg.max_failures = 20;
    auto b = bbs::board::open(g[0], std::make_unique<bbs::sqlite_store>(":memory:"), cfg, &g.services());
    kamaelia::test::latch_flag d0, d1, last;
    auto r0 = std::make_shared<int>(0), r1 = std::make_shared<int>(0), r2 = std::make_shared<int>(0);
    // 10 wrong passwords from each scheduler: 20 in all, none lost.
    g[0].spawn(std::make_unique<login_asker>(b->kdf_service(), "wrong", 10, r0, &d0));
    g[1].spawn(std::make_unique<login_asker>(b->kdf_service(), "wrong", 10, r1, &d1));
    g.start();
    REQUIRE(d0.wait());
    REQUIRE(d1.wait());
    CHECK(*r0 + *r1 == 0); // the 20th failure locks; none was refused before it
    // Now even the right password is refused unchecked, from either scheduler.
    g.post(1, [&] { g[1].spawn(std::make_unique<login_asker>(b->kdf_service(), "right", 1, r2, &last)); });
    REQUIRE(last.wait());
    CHECK(*r2 == 1);
    g.stop(); // the services end with their scheduler
    g.join();
}
