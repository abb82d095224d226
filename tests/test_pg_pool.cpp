// The PostgreSQL stores' connection pool (`?pool=N` in the URL) against a
// throwaway PostgreSQL 15 cluster: the size parsed and bounded, N sessions
// held (counted in pg_stat_activity), concurrent greylist decisions right
// on several connections, a restart under load answered tempfail (never a
// pass) and every pooled connection back afterwards, and the board's posts
// from many sessions at once all landing.
#include <kamaelia/bbs/board.hpp>
#include <kamaelia/bbs/open_store.hpp>
#include <kamaelia/bbs/service.hpp>
#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/core/service.hpp>
#include <kamaelia/greylist/service.hpp>
#include <kamaelia/pg/database.hpp>

#include "pg_support.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

using namespace kamaelia;
using kamaelia::test::pg_cluster;

namespace {

// Runs `s` until `done()` (liveness deadline only).
template <class Pred>
bool pump_until(scheduler& s, Pred done, std::chrono::seconds limit = std::chrono::seconds(60)) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < deadline)
        if (!s.run_once()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    s.run_once();
    return done();
}

// Polls `done()` without a scheduler (liveness deadline only).
template <class Pred>
bool eventually(Pred done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!done() && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return done();
}

struct grey_ask : component {
    greylist::request r;
    std::optional<result<greylist::decision>> got;
    task main() override {
        greylist::check question{r};
        auto x = co_await kamaelia::ask(greylist::service_name, std::move(question));
        got.emplace(std::move(x));
    }
    bool done() const { return got.has_value(); }
};

greylist::request req(const std::string& client, const std::string& sender) {
    greylist::request r;
    std::tie(r.client_address, r.sender, r.recipient) = std::tie(client, sender, "u@example.net");
    return r;
}

// Every ask answered.
template <class Asks>
bool all_done(const Asks& asks) {
    for (auto& a : asks)
        if (!a->done()) return false;
    return true;
}

// Asks every request at once (they arrive together and spread over the
// pool) and waits for every answer; the verdicts in order (tempfail for a
// service-level error, which the servers treat alike).
std::vector<greylist::verdict> ask_all(scheduler& s, const std::vector<greylist::request>& rs) {
    std::vector<std::unique_ptr<grey_ask>> asks;
    for (const auto& r : rs) {
        asks.push_back(std::make_unique<grey_ask>());
        asks.back()->r = r;
        asks.back()->activate(s);
    }
    REQUIRE(pump_until(s, [&] { return all_done(asks); }));
    std::vector<greylist::verdict> out;
    for (auto& a : asks) out.push_back(a->got->ok() ? (**a->got).what : greylist::verdict::tempfail);
    return out;
}

struct fake_time {
    std::shared_ptr<std::atomic<std::int64_t>> now = std::make_shared<std::atomic<std::int64_t>>(1'700'000'000);
    std::function<std::chrono::system_clock::time_point()> clock() const {
        auto n = now;
        return [n] { return std::chrono::system_clock::time_point(std::chrono::seconds(n->load())); };
    }
};

// 30 clients, each with a triplet asked twice in the burst, and one
// triplet from two addresses of one /24 (one triplet, two connections).
std::vector<greylist::request> burst() {
    std::vector<greylist::request> rs;
    for (int i = 1; i <= 30; ++i) {
        auto r = req("198.51.100." + std::to_string(i), "s" + std::to_string(i) + "@example.org");
        rs.push_back(r);
        rs.push_back(r);
    }
    rs.push_back(req("203.0.113.1", "shared@example.org"));
    rs.push_back(req("203.0.113.2", "shared@example.org"));
    return rs;
}

struct running {
    scheduler& s;
    greylist::service* svc;
    running(scheduler& sc, const greylist::settings& cfg) : s(sc), svc(&greylist::start_service(sc, cfg)) {}
    ~running() {
        svc->stop();
        s.run_once();
    }
};

} // namespace

TEST_CASE("pg::split_pool: the pool size comes out of the URL, bounded, libpq never sees it", "[postgresql]") {
    auto p = pg::split_pool("postgresql://k@db.example/grey");
    CHECK(p.size == pg::default_pool_size);
    CHECK(p.conninfo == "postgresql://k@db.example/grey");
    p = pg::split_pool("postgresql://k@db.example/grey?pool=4");
    CHECK(p.size == 4);
    CHECK(p.conninfo == "postgresql://k@db.example/grey");
    p = pg::split_pool("postgres://k@h:5433/g?sslmode=disable&pool=16&connect_timeout=3");
    CHECK(p.size == 16);
    CHECK(p.conninfo == "postgres://k@h:5433/g?sslmode=disable&connect_timeout=3");
    CHECK(pg::split_pool("postgresql://k@h/g?pool=1").size == 1);
    for (const char* bad : {"?pool=0", "?pool=17", "?pool=", "?pool=x", "?pool=-1", "?pool=2x", "?pool= 2",
                            "?pool=99999999999999999999", "?pool=2&pool=3"}) {
        INFO(bad);
        CHECK_THROWS_AS(pg::split_pool(std::string("postgresql://k@h/g") + bad), std::invalid_argument);
    }
    try {
        (void)pg::split_pool("postgresql://k@h/g?pool=0");
    } catch (const std::invalid_argument& e) {
        CHECK(std::string(e.what()).find("1 to 16") != std::string::npos);
    }
    // A bad size stops the stores before any connection is tried.
    greylist::settings cfg;
    cfg.database = "postgresql://k@127.0.0.1:1/g?pool=0";
    CHECK_THROWS_AS(greylist::service{cfg}, greylist::store_error);
    CHECK_THROWS_AS(bbs::open_pool("postgresql://k@127.0.0.1:1/g?pool=99"), bbs::store_error);
}

TEST_CASE("greylist pool: N sessions held, concurrent decisions right on several connections",
          "[postgresql][integration][threads]") {
    if (!pg_cluster::available()) {
        WARN("PostgreSQL server binaries are not installed: skipped (scripts/install-deps installs them)");
        return;
    }
    pg_cluster pg;
    fake_time now;
    greylist::settings cfg;
    cfg.database = pg.url() + "?pool=3";
    cfg.clock = now.clock();
    scheduler s;
    {
        running r(s, cfg);
        CHECK(r.svc->connections() == 3);
        CHECK(pg.backends("kamaelia-greylist") == 3);

        auto rs = burst();
        auto first = ask_all(s, rs);
        for (std::size_t i = 0; i < rs.size(); ++i) {
            INFO(i << " " << rs[i].client_address);
            CHECK(first[i] == greylist::verdict::greylisted);
        }
        // One row a triplet: the shared one too, though it met on two connections.
        CHECK(pg.value("SELECT count(*) FROM grey_triplets") == "31");

        *now.now += 301; // past the delay: every retry passes, the doubled ones too
        auto second = ask_all(s, rs);
        for (std::size_t i = 0; i < rs.size(); ++i) {
            INFO(i << " " << rs[i].client_address);
            CHECK(second[i] == greylist::verdict::pass);
        }
        CHECK(r.svc->decisions() == 2 * rs.size());
        // Each triplet's first pass counted once, for the client that made it:
        // 30 clients, and one of the two sharing a triplet (the other's retry
        // found it passed already).
        CHECK(pg.value("SELECT count(*) FROM grey_clients WHERE count = 1") == "31");
    }
    CHECK(eventually([&] { return pg.backends("kamaelia-greylist") == 0; })); // closed with the service
}

TEST_CASE("greylist pool: PostgreSQL restarted under load: tempfail, never a pass, every connection back",
          "[postgresql][integration][threads]") {
    if (!pg_cluster::available()) return;
    pg_cluster pg;
    fake_time now;
    greylist::settings cfg;
    cfg.database = pg.url() + "?pool=3";
    cfg.clock = now.clock();
    cfg.health_interval = std::chrono::milliseconds(100); // idle connections notice the restart by themselves
    scheduler s;
    running r(s, cfg);
    auto rs = burst();
    for (auto v : ask_all(s, rs)) CHECK(v == greylist::verdict::greylisted);

    // A burst of new triplets, the server stopped while it is in flight:
    // each answer is a greylisting that committed or a tempfail.
    std::vector<greylist::request> fresh;
    for (int i = 1; i <= 40; ++i) fresh.push_back(req("192.0.2." + std::to_string(i), "new@example.org"));
    std::vector<std::unique_ptr<grey_ask>> asks;
    for (const auto& q : fresh) {
        asks.push_back(std::make_unique<grey_ask>());
        asks.back()->r = q;
        asks.back()->activate(s);
    }
    for (int i = 0; i < 20; ++i) s.run_once();
    pg.stop();
    REQUIRE(pump_until(s, [&] { return all_done(asks); }));
    for (auto& a : asks) {
        auto v = a->got->ok() ? (**a->got).what : greylist::verdict::tempfail;
        CHECK((v == greylist::verdict::greylisted || v == greylist::verdict::tempfail));
    }
    // Down: every connection answers tempfail, none a pass.
    *now.now += 301;
    for (auto v : ask_all(s, rs)) CHECK(v == greylist::verdict::tempfail);

    pg.start();
    // Every pooled connection comes back (the next batch or the idle probe reconnects it).
    CHECK(eventually([&] { return pg.backends("kamaelia-greylist") == 3; }));
    std::vector<greylist::verdict> after;
    CHECK(pump_until(s, [&] {
        after = ask_all(s, rs);
        for (auto v : after)
            if (v == greylist::verdict::tempfail) return false;
        return true;
    }));
    // What was committed before the restart was kept: the retries pass.
    for (auto v : after) CHECK(v == greylist::verdict::pass);
    CHECK(pg.backends("kamaelia-greylist") == 3);
}

TEST_CASE("greylist pool: a flood of new triplets on every connection stays at the row cap, not N times it",
          "[postgresql][integration][threads]") {
    if (!pg_cluster::available()) return;
    pg_cluster pg;
    fake_time now;
    greylist::settings cfg;
    cfg.database = pg.url() + "?pool=3";
    cfg.clock = now.clock();
    cfg.max_rows = 40;
    scheduler s;
    running r(s, cfg);
    // 240 never-seen triplets from 240 clients: spread over the three
    // connections, each of which would allow 40 of its own with a count
    // of its own (120 rows).
    for (int round = 0; round < 4; ++round) {
        std::vector<greylist::request> flood;
        for (int i = 0; i < 60; ++i)
            flood.push_back(req("10." + std::to_string(round) + "." + std::to_string(i) + ".1",
                                "flood" + std::to_string(i) + "@example.org"));
        for (auto v : ask_all(s, flood)) CHECK(v == greylist::verdict::greylisted);
    }
    // The pool shares one count: at the cap, each new row evicts one. What a
    // connection inserts while another evicts can overshoot by a batch in
    // flight on each, no more.
    int rows = std::stoi(pg.value("SELECT count(*) FROM grey_triplets"));
    CHECK(rows >= 40);
    CHECK(rows <= 40 + 3);
}

namespace {

struct post_ask : component {
    std::string service;
    int i = 0;
    std::shared_ptr<std::int64_t> id = std::make_shared<std::int64_t>(0);
    std::optional<bool> ok;
    task main() override {
        bbs::store_job job{[n = i, out = id](bbs::store& db) {
            bbs::message_record m;
            m.date = "now";
            m.from = "t";
            m.to = "all";
            m.subject = "post " + std::to_string(n);
            *out = db.post(m);
        }};
        auto r = co_await kamaelia::ask(service, std::move(job));
        ok = static_cast<bool>(r);
    }
    bool done() const { return ok.has_value(); }
};

} // namespace

TEST_CASE("bbs pool: N sessions held, posts from many sessions at once all land, ids distinct",
          "[postgresql][integration][threads][bbs]") {
    if (!pg_cluster::available()) return;
    pg_cluster pg;
    scheduler s;
    bbs::settings cfg;
    cfg.kdf_iterations = 1;
    auto board = bbs::board::open(s, pg.url() + "?pool=3", cfg);
    CHECK(pg.backends("kamaelia-bbs") == 3);
    std::vector<std::unique_ptr<post_ask>> asks;
    for (int i = 0; i < 60; ++i) {
        asks.push_back(std::make_unique<post_ask>());
        asks.back()->service = board->store_service();
        asks.back()->i = i;
        asks.back()->activate(s);
    }
    REQUIRE(pump_until(s, [&] { return all_done(asks); }));
    std::set<std::int64_t> ids;
    for (auto& a : asks) {
        CHECK(*a->ok);
        ids.insert(*a->id);
    }
    CHECK(ids.size() == asks.size());
    CHECK(pg.value("SELECT count(*) FROM bbs_messages") == "60");
    CHECK(board->db_pending() == 0);
    board->stop_services();
    CHECK(pump_until(s, [&] { return pg.backends("kamaelia-bbs") == 0; })); // closed with the service
}
