// The PostgreSQL greylist store against a throwaway PostgreSQL 15 cluster the
// test creates (initdb as an unprivileged user, a free loopback port).
#include <kamaelia/greylist/pg_store.hpp>

#include "pg_support.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

using namespace kamaelia;
using namespace kamaelia::greylist;
using kamaelia::test::pg_cluster;

namespace {
pg_store::options opts(const pg_cluster& pg) {
    pg_store::options o;
    o.conninfo = pg.url();
    o.connect_timeout = std::chrono::seconds(5);
    return o;
}
const triplet k1{"192.0.2.0/24", "alice@example.org", "bob@example.net"};
} // namespace

TEST_CASE("pg_store: rows survive a reconnect; schema created once, versioned", "[postgresql][integration]") {
    if (!pg_cluster::available()) {
        WARN("PostgreSQL server binaries are not installed: skipped (scripts/install-deps installs them)");
        return;
    }
    pg_cluster pg;
    {
        pg_store s(opts(pg));
        CHECK(s.name().find("127.0.0.1:") == 0);
        s.begin();
        CHECK_FALSE(s.find(k1));
        s.save(k1, {100, 100}, false);
        s.save_client("192.0.2.7", {3, 100});
        s.commit();
        s.begin();
        s.save(k1, {100, 400}, true);
        s.rollback(); // not kept
    }
    pg_store again(opts(pg)); // a second open migrates nothing and keeps the rows
    again.begin();
    auto r = again.find(k1);
    REQUIRE(r);
    CHECK(*r == triplet_row{100, 100});
    auto c = again.find_client("192.0.2.7");
    REQUIRE(c);
    CHECK(*c == client_row{3, 100});
    again.commit();
    timing t;
    t.delay = 300;
    auto st = again.stats(t, 5);
    CHECK(st.triplets == 1);
    CHECK(st.clients == 1);
    CHECK(st.schema_version == pg_store::schema_version);
    int n = 0;
    again.for_each([&](const triplet& k, const triplet_row& row) {
        CHECK(k == k1);
        CHECK(row.first == 100);
        ++n;
    });
    CHECK(n == 1);
}

TEST_CASE("pg_store: a newer schema in the database is refused with a clear message", "[postgresql][integration]") {
    if (!pg_cluster::available()) return;
    pg_cluster pg;
    { pg_store s(opts(pg)); }
    REQUIRE(pg.psql("UPDATE kamaelia_schema SET version = 99 WHERE part = 'greylist'") == 0);
    try {
        pg_store s(opts(pg));
        FAIL("opened a database with a newer schema");
    } catch (const store_error& e) {
        CHECK(std::string(e.what()).find("newer") != std::string::npos);
    }
}

TEST_CASE("pg_store: two hosts seeing one triplet first at once give one row, not an error",
          "[postgresql][integration][threads]") {
    if (!pg_cluster::available()) return;
    pg_cluster pg;
    pg_store a(opts(pg));
    pg_store b(opts(pg));
    // Host A finds nothing and inserts, but has not committed when host B
    // looks: B finds nothing too (A's row is not visible), inserts, and waits
    // on A's key until A commits; then B's upsert keeps A's earlier sighting.
    a.begin();
    CHECK_FALSE(a.find(k1));
    a.save(k1, {100, 100}, false);
    std::atomic<bool> b_done{false};
    std::string b_error;
    std::thread tb([&] {
        try {
            b.begin();
            if (b.find(k1)) b_error = "B saw an uncommitted row";
            b.save(k1, {105, 105}, false);
            b.commit();
        } catch (const std::exception& e) {
            b_error = e.what();
        }
        b_done = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(200)); // B is now blocked (or not yet there: both fine)
    a.commit();
    tb.join();
    CHECK(b_error.empty());
    CHECK(b_done);
    a.begin();
    auto r = a.find(k1);
    a.commit();
    REQUIRE(r);
    CHECK(r->first == 100); // the first sighting, whichever host saw it
    CHECK(r->last == 105);
    timing t;
    CHECK(a.stats(t, 0).triplets == 1);
}

TEST_CASE("pg_store: server down is a store_error, and the next begin() reconnects after a restart",
          "[postgresql][integration]") {
    if (!pg_cluster::available()) return;
    pg_cluster pg;
    pg_store s(opts(pg));
    s.begin();
    s.save(k1, {1, 1}, false);
    s.commit();
    pg.stop();
    CHECK_THROWS_AS(s.begin(), store_error); // whichever call first meets the dead connection
    CHECK_THROWS_AS(s.begin(), store_error); // still down: still a temporary failure
    pg.start();
    s.begin();
    auto r = s.find(k1);
    s.commit();
    REQUIRE(r);
    CHECK(r->first == 1);
    CHECK(s.reconnects() >= 1);
}

TEST_CASE("pg_store: a read-only database refuses the write with a store_error", "[postgresql][integration]") {
    if (!pg_cluster::available()) return;
    pg_cluster pg;
    REQUIRE(pg.psql("CREATE DATABASE grey") == 0);
    auto o = opts(pg);
    o.conninfo = pg.url("grey");
    { pg_store s(o); }
    REQUIRE(pg.psql("ALTER DATABASE grey SET default_transaction_read_only = on") == 0);
    pg_store s(o);
    s.begin();
    // find() already locks the row (FOR UPDATE), which a read-only
    // transaction refuses: a temporary failure, never an accept.
    CHECK_THROWS_AS(
        [&] {
            (void)s.find(k1);
            s.save(k1, {1, 1}, false);
        }(),
        store_error);
    s.rollback();
    // The store goes on once the database is writable again.
    REQUIRE(pg.psql("ALTER DATABASE grey SET default_transaction_read_only = off") == 0);
    pg_store w(o);
    w.begin();
    w.save(k1, {1, 1}, false);
    w.commit();
}

TEST_CASE("pg_store: expiry run by one host skips rows another host holds", "[postgresql][integration][threads]") {
    if (!pg_cluster::available()) return;
    pg_cluster pg;
    pg_store a(opts(pg));
    pg_store b(opts(pg));
    timing t;
    t.delay = 300;
    t.retry_window = 2 * 86400;
    t.max_age = 35 * 86400;
    const std::int64_t old = 1000;
    const std::int64_t now = old + 40 * 86400;
    const triplet k2{"198.51.100.0/24", "x@example.org", "y@example.net"};
    a.begin();
    a.save(k1, {old, old}, false);
    a.save(k2, {old, old}, false);
    a.commit();
    a.begin();
    REQUIRE(a.find(k1)); // A holds k1's row
    b.begin();
    CHECK(b.expire(now, t, 100) == 1); // B deletes k2 and does not wait for k1
    b.commit();
    a.commit();
    b.begin();
    CHECK(b.expire(now, t, 100) == 1);
    b.commit();
    CHECK(b.stats(t, 0).triplets == 0);
}
