// The board's PostgreSQL store against a throwaway PostgreSQL 15 cluster the
// test creates (initdb as an unprivileged user, a free loopback port): the
// same contract as the SQLite store, two hosts on one board, a newer schema
// refused, and a server that goes away and comes back.
#include <kamaelia/bbs/pg_store.hpp>
#include <kamaelia/bbs/sqlite_store.hpp>

#include "bbs_store_contract.hpp"
#include "pg_support.hpp"

#include <catch2/catch.hpp>

#include <string>

namespace bbs = kamaelia::bbs;
using kamaelia::test::msg;
using kamaelia::test::pg_cluster;

namespace {
bbs::pg_store::options opts(const pg_cluster& pg, const std::string& db = "postgres") {
    bbs::pg_store::options o;
    o.conninfo = pg.url(db);
    o.connect_timeout = std::chrono::seconds(5);
    return o;
}
} // namespace

TEST_CASE("bbs pg_store: the store contract, each check on a fresh database", "[postgresql][integration][bbs]") {
    if (!pg_cluster::available()) {
        WARN("PostgreSQL server binaries are not installed: skipped (scripts/install-deps installs them)");
        return;
    }
    pg_cluster pg;
    int n = 0;
    for (auto check : {kamaelia::test::users_case_insensitive, kamaelia::test::sql_is_data,
                       kamaelia::test::read_marks_order_browsing, kamaelia::test::replies_and_deletes,
                       kamaelia::test::stats_pages_export}) {
        std::string db = "board" + std::to_string(++n);
        REQUIRE(pg.psql("CREATE DATABASE " + db) == 0);
        bbs::pg_store s(opts(pg, db));
        check(s);
        CHECK_FALSE(s.in_transaction());
    }
}

TEST_CASE("bbs pg_store: bytes kept as sent, rows shared by two hosts and kept across opens",
          "[postgresql][integration][bbs]") {
    if (!pg_cluster::available()) return;
    pg_cluster pg;
    bbs::pg_store a(opts(pg));
    bbs::pg_store b(opts(pg)); // the second host: migrates nothing
    CHECK(a.name().find("127.0.0.1:") == 0);
    bbs::password_hash pw = bbs::hash_password("pw", 1);
    pw.salt[3] = '\0'; // raw bytes, NUL included
    REQUIRE(a.add_user("Ann", pw));
    std::string latin1 = "caf\xe9 \xff";
    b.begin();
    auto u = b.find_user("ann");
    REQUIRE(u);
    CHECK(u->password.salt == pw.salt);
    CHECK(u->password.hash == pw.hash);
    auto id = b.post(msg(u->id, "Ann", latin1, std::string("body\0with NUL? no: tab\t", 22)));
    b.commit();
    auto m = a.read(u->id, id);
    REQUIRE(m);
    CHECK(m->subject == latin1);
    CHECK(m->body == std::string("body\0with NUL? no: tab\t", 22));
    CHECK(a.unread_count(u->id) == 0);
    // A transaction rolled back leaves nothing behind.
    a.begin();
    a.post(msg(u->id, "Ann", "gone", "x"));
    a.rollback();
    bbs::pg_store again(opts(pg));
    CHECK(again.message_count() == 1);
    CHECK(again.user_count() == 1);
}

TEST_CASE("bbs pg_store: a newer schema in the database is refused with a clear message",
          "[postgresql][integration][bbs]") {
    if (!pg_cluster::available()) return;
    pg_cluster pg;
    { bbs::pg_store s(opts(pg)); }
    REQUIRE(pg.psql("UPDATE kamaelia_schema SET version = 99 WHERE part = 'bbs'") == 0);
    try {
        bbs::pg_store s(opts(pg));
        FAIL("opened a database with a newer schema");
    } catch (const bbs::store_error& e) {
        std::string what = e.what();
        CHECK(what.find("newer") != std::string::npos);
        CHECK(what.find("upgrade kamaelia") != std::string::npos);
    }
}

TEST_CASE("bbs pg_store: a server that goes away fails the transaction, it is used again once back",
          "[postgresql][integration][bbs]") {
    if (!pg_cluster::available()) return;
    pg_cluster pg;
    bbs::pg_store s(opts(pg));
    REQUIRE(s.add_user("ann", bbs::hash_password("pw", 1)));

    // A killed backend (an administrator, a failover): at most the
    // transaction it was in fails, and the next one reconnects.
    REQUIRE(pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'kamaelia-bbs'") ==
            0);
    try {
        s.begin();
        s.post(msg(1, "ann", "during", "x"));
        s.commit();
    } catch (const bbs::store_error&) {
        s.rollback(); // one failure, told as such
    }
    s.begin();
    s.post(msg(1, "ann", "after a killed backend", "x"));
    s.commit();

    pg.stop();
    bool failed = false;
    try {
        s.begin();
        s.post(msg(1, "ann", "while down", "x"));
        s.commit();
    } catch (const bbs::store_error& e) {
        failed = true;
        s.rollback();
        CHECK(std::string(e.what()).find("board database postgresql") == 0);
    }
    CHECK(failed);
    CHECK_FALSE(s.in_transaction());
    pg.start();
    s.begin();
    s.post(msg(1, "ann", "after the restart", "x"));
    s.commit();
    CHECK(s.reconnects() >= 1);
    auto all = s.all_messages();
    REQUIRE_FALSE(all.empty());
    CHECK(all.back().subject == "after the restart");
    for (const auto& m : all) CHECK(m.subject != "while down");
}

TEST_CASE("bbs pg_store: a SQLite board copied keeps its ids, and a copy run twice is one board",
          "[postgresql][integration][bbs]") {
    if (!pg_cluster::available()) return;
    pg_cluster pg;
    bbs::sqlite_store from(":memory:");
    from.add_user("a", bbs::hash_password("pw", 1));
    from.add_user("b", bbs::hash_password("pw", 1));
    auto a = from.find_user("a")->id, b = from.find_user("b")->id;
    auto m1 = from.post(msg(a, "a", "one", "1"));
    auto m2 = from.post(msg(a, "a", "two", "2"));
    REQUIRE(from.remove(a, m1) == bbs::delete_result::deleted);
    auto r = msg(b, "b", "Re: two", "3");
    r.reply_to = {m2};
    auto m3 = from.post(r);
    bbs::pg_store to(opts(pg));
    for (int run = 0; run < 2; ++run) {
        to.begin();
        from.for_each_user([&](const bbs::user_record& u) { to.restore_user(u); });
        for (const auto& m : from.all_messages()) to.restore_message(m);
        from.for_each_read_mark([&](std::int64_t u, std::int64_t m) { to.restore_read_mark(u, m); });
        to.finish_restore();
        to.commit();
    }
    CHECK(to.user_count() == 2);
    CHECK(to.message_count() == 2);
    CHECK(to.find_user("B")->id == b);
    CHECK(to.read(a, m3)->reply_to == std::vector<std::int64_t>{m2});
    CHECK(to.unread_count(b) == 1); // b wrote m3, has not read m2
    CHECK(to.next_unread(b, 0) == m2);
    auto m4 = to.post(msg(a, "a", "new", "n"));
    CHECK(m4 > m3); // new posts number on after the copied ones
    CHECK(to.add_user("c", bbs::hash_password("pw", 1)));
    CHECK(to.find_user("c")->id > b);
}
