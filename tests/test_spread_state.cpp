// What the connections of grey, policy and bbs share when the daemon runs
// several schedulers (docs/ARCHITECTURE.md, "What grey, policy and bbs
// connections share"): the board's services asked from another scheduler,
// and the counters, the session cap and the upstream's health touched from
// several threads at once (the login throttle: test_bbs_throttle.cpp). [threads]: run under TSan.
#include "thread_support.hpp"

#include <kamaelia/bbs/board.hpp>
#include <kamaelia/bbs/password.hpp>
#include <kamaelia/bbs/service.hpp>
#include <kamaelia/bbs/sqlite_store.hpp>
#include <kamaelia/core/scheduler_group.hpp>
#include <kamaelia/core/service.hpp>
#include <kamaelia/greylist/meter.hpp>
#include <kamaelia/smtp/proxy.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

namespace bbs = kamaelia::bbs;
using namespace std::chrono_literals;

namespace {

bbs::settings fast_settings() {
    bbs::settings s;
    s.kdf_iterations = 1;
    return s;
}

// What a session's stages do, from a scheduler other than the board's: a
// user and a post through the store service, a password check through the
// KDF service. What it found outlives it (the scheduler reaps it at its end).
struct remote_outcome {
    kamaelia::test::latch_flag done;
    bool stored = false, matched = false;
    std::int64_t posted = 0;
};

struct remote_session : kamaelia::component {
    std::string store_name, kdf_name;
    std::shared_ptr<remote_outcome> out;
    remote_session(std::string s, std::string k, std::shared_ptr<remote_outcome> o)
        : store_name(std::move(s)),
          kdf_name(std::move(k)),
          out(std::move(o)) {}
    kamaelia::task main() override {
        auto id = std::make_shared<std::int64_t>(0);
        bbs::store_job add{[id](bbs::store& db) {
            db.add_user("harry", bbs::hash_password("pw", 1));
            bbs::message_record m;
            m.from = "harry";
            m.subject = "across";
            m.body = "from scheduler 1";
            *id = db.post(m);
        }};
        auto r = co_await kamaelia::ask(store_name, std::move(add));
        out->stored = r.ok();
        out->posted = *id;
        bbs::kdf_request check;
        check.password = "pw";
        check.stored = bbs::hash_password("pw", 1);
        auto v = co_await kamaelia::ask(kdf_name, std::move(check));
        out->matched = v.ok() && v->match;
        out->done.set();
    }
};

} // namespace

TEST_CASE("board across schedulers: sessions on scheduler 1 ask the group's store and KDF services",
          "[bbs][group][threads]") {
    kamaelia::scheduler_group g(2);
    auto b = bbs::board::open(g[0], std::make_unique<bbs::sqlite_store>(":memory:"), fast_settings(), &g.services());
    // Registered once for the group: scheduler 1 has no service of its own.
    CHECK(g[0].services().has(b->store_service()));
    CHECK_FALSE(g[1].services().has(b->store_service()));
    auto out = std::make_shared<remote_outcome>();
    g[1].spawn(std::make_unique<remote_session>(b->store_service(), b->kdf_service(), out));
    g.start();
    REQUIRE(out->done.wait());
    CHECK(out->stored);
    CHECK(out->posted > 0);
    CHECK(out->matched);
    // The daemon's SIGTERM path: scheduler 0 stops the services it holds.
    kamaelia::test::latch_flag stopped;
    g.post(0, [&] {
        b->stop_services();
        stopped.set();
    });
    REQUIRE(stopped.wait());
    g.stop();
    g.join();
}

TEST_CASE("board: the session cap holds while several threads admit sessions", "[bbs][threads]") {
    kamaelia::scheduler s;
    bbs::settings cfg = fast_settings();
    cfg.max_sessions = 100;
    auto b = bbs::board::inline_board(s, std::make_unique<bbs::sqlite_store>(":memory:"), cfg);
    constexpr int threads = 4, tries = 500;
    std::vector<std::vector<bbs::board::ticket>> kept(threads);
    std::atomic<int> refused{0};
    {
        std::vector<std::thread> ts;
        for (int t = 0; t < threads; ++t)
            ts.emplace_back([&, t] {
                for (int i = 0; i < tries; ++i) {
                    if (auto k = b->try_enter())
                        kept[t].push_back(std::move(*k));
                    else
                        refused.fetch_add(1);
                }
            });
        for (auto& t : ts) t.join();
    }
    CHECK(b->sessions() == 100);
    CHECK(b->full());
    CHECK(refused.load() == threads * tries - 100);
    CHECK(b->sessions_total() == 100);
    // Sessions end on their own threads too.
    {
        std::vector<std::thread> ts;
        for (int t = 0; t < threads; ++t) ts.emplace_back([&, t] { kept[t].clear(); });
        for (auto& t : ts) t.join();
    }
    CHECK(b->sessions() == 0);
    CHECK_FALSE(b->full());
    REQUIRE(b->try_enter());
    CHECK(b->sessions() == 0); // that ticket was a temporary
}

TEST_CASE("greylist meter: decisions counted on several schedulers' threads, read on another", "[greylist][threads]") {
    kamaelia::greylist::meter m;
    constexpr int threads = 4, each = 1000;
    std::atomic<bool> stop{false};
    bool monotonic = true;
    std::thread reader([&] { // the console's scrape on scheduler 0: figures never go back
        std::uint64_t last_pass = 0, last_count = 0;
        while (!stop.load()) {
            std::uint64_t p = m.pass(), c = m.ask_seconds().count();
            monotonic = monotonic && p >= last_pass && c >= last_count;
            last_pass = p;
            last_count = c;
        }
    });
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t)
        ts.emplace_back([&, t] {
            kamaelia::greylist::decision d;
            d.what = t % 2 ? kamaelia::greylist::verdict::pass : kamaelia::greylist::verdict::greylisted;
            for (int i = 0; i < each; ++i) m.count(d, 0.001);
        });
    for (auto& t : ts) t.join();
    stop = true;
    reader.join();
    CHECK(m.pass() == 2 * each);
    CHECK(m.greylisted() == 2 * each);
    CHECK(m.whitelisted() == 0);
    CHECK(m.tempfail() == 0);
    CHECK(m.ask_seconds().count() == threads * each);
    CHECK(monotonic);
}

TEST_CASE("smtp proxy: the upstream's health and counters shared by sessions on several threads", "[smtp][threads]") {
    kamaelia::smtp::proxy_context ctx;
    ctx.cfg.upstream_backoff_min = 1s;
    ctx.cfg.upstream_backoff_max = 4s;
    auto t0 = kamaelia::time_point{} + 1h;
    constexpr int threads = 4, each = 200;
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t)
        ts.emplace_back([&] {
            for (int i = 0; i < each; ++i) {
                ctx.health.failed(t0, ctx.cfg);
                (void)ctx.health.down(t0);
                ctx.next_session.fetch_add(1, std::memory_order_relaxed);
                ctx.deferred.fetch_add(1, std::memory_order_relaxed);
            }
        });
    for (auto& t : ts) t.join();
    CHECK(ctx.health.failures() == threads * each);
    CHECK(ctx.health.down(t0 + 3s));       // the back-off grew to its cap
    CHECK_FALSE(ctx.health.down(t0 + 5s)); // and no further
    CHECK(ctx.next_session.load() == threads * each);
    CHECK(ctx.deferred.load() == threads * each);
    ctx.health.ok();
    CHECK_FALSE(ctx.health.down(t0));
}
