// The PostgreSQL greylist store against a throwaway PostgreSQL 15 cluster the
// test creates (initdb as an unprivileged user, a free loopback port).
#include <kamaelia/greylist/pg_store.hpp>

#include "pg_support.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>
#include <vector>

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

TEST_CASE("pg_store: rows survive a reconnect, schema created once, versioned", "[postgresql][integration]") {
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
    // looks: B finds nothing too (A's row is not visible) and inserts. The
    // writes go at COMMIT, so whichever commits second meets the other's
    // row, and its upsert keeps the earlier sighting.
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
    // Whichever call of the batch first meets the dead connection throws.
    auto batch = [&] {
        s.begin();
        (void)s.find(k1);
        s.commit();
    };
    CHECK_THROWS_AS(batch(), store_error);
    s.rollback();
    CHECK_THROWS_AS(batch(), store_error); // still down: still a temporary failure
    s.rollback();
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

namespace {
triplet key_n(int i) {
    return {"192.0.2." + std::to_string(i % 250) + "/32", "s" + std::to_string(i) + "@example.org", "r@example.net"};
}
// A batch as the service runs it: begin, every lookup at once, the
// decisions' writes, commit.
void batch_insert(pg_store& s, const std::vector<triplet>& keys, std::int64_t at) {
    s.begin();
    std::vector<std::string> clients{"192.0.2.7"};
    s.prefetch(keys, clients);
    for (const auto& k : keys) {
        auto row = s.find(k);
        s.save(k, row ? triplet_row{row->first, at} : triplet_row{at, at}, row.has_value());
    }
    s.save_client("192.0.2.7", {1, at});
    s.commit();
}
} // namespace

TEST_CASE("pg_store: a batch costs two round trips whatever its size (pipeline mode)", "[postgresql][integration]") {
    if (!pg_cluster::available()) return;
    pg_cluster pg;
    pg_store s(opts(pg));
    std::vector<triplet> keys;
    for (int i = 0; i < 40; ++i) keys.push_back(key_n(i));
    batch_insert(s, keys, 100);
    CHECK(s.round_trips() == 2); // BEGIN + 41 lookups; 41 writes + COMMIT
    batch_insert(s, keys, 200);  // every row known now: updates
    CHECK(s.round_trips() == 2);
    // More statements than one sync carries (database::max_pending): still
    // one transaction, a few round trips, every row there.
    std::vector<triplet> many;
    for (int i = 0; i < 700; ++i) many.push_back(key_n(1000 + i));
    batch_insert(s, many, 300);
    CHECK(s.round_trips() <= 4);
    timing t;
    CHECK(s.stats(t, 0).triplets == 740);
    s.begin();
    auto r = s.find(keys[5]);
    s.commit();
    REQUIRE(r);
    CHECK(*r == triplet_row{100, 200});
    // The idle probe (an empty transaction) is one round trip, and still
    // goes to the server.
    s.begin();
    s.commit();
    CHECK(s.round_trips() == 1);
}

TEST_CASE("pg_store: a triplet twice in one batch gives one row, the batch's last word", "[postgresql][integration]") {
    if (!pg_cluster::available()) return;
    pg_cluster pg;
    pg_store s(opts(pg));
    std::vector<triplet> keys{k1, k1};
    s.begin();
    s.prefetch(keys, {});
    CHECK_FALSE(s.find(k1));
    s.save(k1, {100, 100}, false);
    auto again = s.find(k1); // the batch's own write, not the database's (empty) row
    REQUIRE(again);
    CHECK(*again == triplet_row{100, 100});
    s.save(k1, {100, 160}, true);
    s.commit();
    CHECK(s.round_trips() == 2);
    timing t;
    CHECK(s.stats(t, 0).triplets == 1);
    s.begin();
    auto r = s.find(k1);
    s.commit();
    REQUIRE(r);
    CHECK(*r == triplet_row{100, 160});
}

TEST_CASE("pg_store: a statement failing mid-pipeline fails the whole batch, nothing of it is kept",
          "[postgresql][integration]") {
    if (!pg_cluster::available()) return;
    pg_cluster pg;
    pg_store s(opts(pg));
    // A row the server refuses, in the middle of a batch.
    REQUIRE(pg.psql("ALTER TABLE grey_triplets ADD CONSTRAINT no_negative CHECK (first >= 0)") == 0);
    const triplet bad{"198.51.100.0/24", "bad@example.org", "x@example.net"};
    std::vector<triplet> keys{k1, bad, key_n(3)};
    s.begin();
    s.prefetch(keys, {});
    s.save(k1, {100, 100}, false);
    s.save(bad, {-5, 100}, false);
    s.save(key_n(3), {100, 100}, false);
    try {
        s.commit();
        FAIL("a batch with a refused row committed");
    } catch (const store_error& e) {
        CHECK(std::string(e.what()).find("no_negative") != std::string::npos);
    }
    s.rollback();
    timing t;
    CHECK(s.stats(t, 0).triplets == 0);
    // The session is still good: the next batch needs no reconnection.
    batch_insert(s, {k1}, 100);
    CHECK(s.reconnects() == 0);
    CHECK(s.stats(t, 0).triplets == 1);
}

TEST_CASE("pg_store: a COMMIT that fails fails the whole batch, nothing of it is kept", "[postgresql][integration]") {
    if (!pg_cluster::available()) return;
    pg_cluster pg;
    pg_store s(opts(pg));
    // A deferred constraint trigger runs at COMMIT: every statement of the
    // batch succeeds and the COMMIT itself is refused.
    REQUIRE(pg.psql("CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS \\$\\$ BEGIN IF NEW.sender ="
                    " 'refused@example.org' THEN RAISE EXCEPTION 'refused at commit'; END IF; RETURN NULL; END"
                    " \\$\\$; CREATE CONSTRAINT TRIGGER at_commit AFTER INSERT ON grey_triplets DEFERRABLE"
                    " INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse()") == 0);
    const triplet refused{"198.51.100.0/24", "refused@example.org", "x@example.net"};
    std::vector<triplet> keys{k1, refused};
    s.begin();
    s.prefetch(keys, {});
    s.save(k1, {100, 100}, false);
    s.save(refused, {100, 100}, false);
    try {
        s.commit();
        FAIL("a refused COMMIT was taken for a commit");
    } catch (const store_error& e) {
        CHECK(std::string(e.what()).find("refused at commit") != std::string::npos);
    }
    s.rollback();
    timing t;
    CHECK(s.stats(t, 0).triplets == 0);
    batch_insert(s, {k1}, 100);
    CHECK(s.stats(t, 0).triplets == 1);
}

TEST_CASE("pg_store: a session killed mid-batch fails that batch, the next one reconnects",
          "[postgresql][integration][threads]") {
    if (!pg_cluster::available()) return;
    pg_cluster pg;
    pg_store a(opts(pg));
    pg_store b(opts(pg));
    batch_insert(a, {k1}, 100);
    // B holds k1's row, so A's batch waits in its lookups (mid-pipeline)
    // until the server kills A's session.
    b.begin();
    REQUIRE(b.find(k1));
    std::string a_error;
    std::thread ta([&] {
        try {
            batch_insert(a, {key_n(1), k1}, 200);
        } catch (const store_error& e) {
            a_error = e.what();
        }
        a.rollback();
    });
    // Wait until A waits on the lock, then terminate it as an administrator
    // (or a failover) would.
    const std::string waiting = "DO \\$\\$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE"
                                " wait_event_type = 'Lock') THEN RAISE EXCEPTION 'not yet'; END IF; END \\$\\$";
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (pg.psql(waiting) != 0 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    CHECK(pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE wait_event_type = 'Lock'") == 0);
    ta.join();
    CHECK(a_error.find("greylist database postgresql") != std::string::npos);
    b.commit();
    // Nothing of A's batch was kept, and its next batch works on a new session.
    batch_insert(a, {key_n(2)}, 300);
    CHECK(a.reconnects() == 1);
    a.begin();
    CHECK_FALSE(a.find(key_n(1)));
    auto r = a.find(k1);
    a.commit();
    REQUIRE(r);
    CHECK(r->last == 100);
}

TEST_CASE("pg_store: the server stopped between a batch's lookups and its COMMIT: tempfail, then reconnect",
          "[postgresql][integration]") {
    if (!pg_cluster::available()) return;
    pg_cluster pg;
    pg_store s(opts(pg));
    s.begin();
    std::vector<triplet> keys{k1};
    s.prefetch(keys, {});
    s.save(k1, {100, 100}, false);
    pg.stop(); // fast shutdown: the session and its open transaction end
    CHECK_THROWS_AS(s.commit(), store_error);
    s.rollback();
    pg.start();
    batch_insert(s, {key_n(1)}, 100);
    CHECK(s.reconnects() == 1);
    timing t;
    CHECK(s.stats(t, 0).triplets == 1); // only the batch after the restart
}
