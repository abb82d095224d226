// The board's store, password hashing and the importer, without a scheduler.
#include <kamaelia/bbs/import.hpp>
#include <kamaelia/bbs/password.hpp>
#include <kamaelia/bbs/sqlite_store.hpp>

#include "bbs_store_contract.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <random>

namespace bbs = kamaelia::bbs;
using kamaelia::test::msg;
namespace fs = std::filesystem;

namespace {
struct temp_dir {
    fs::path p;
    temp_dir() {
        std::random_device rd;
        p = fs::temp_directory_path() / ("kamaelia-bbs-" + std::to_string(rd()) + std::to_string(rd()));
        fs::create_directories(p);
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(p, ec);
    }
};

void write(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }

} // namespace

TEST_CASE("bbs password: PBKDF2 with a random salt, verified in constant time", "[bbs]") {
    auto a = bbs::hash_password("secret", 10);
    auto b = bbs::hash_password("secret", 10);
    CHECK(a.salt.size() == 16);
    CHECK(a.hash.size() == 32);
    CHECK(a.iterations == 10);
    CHECK(a.salt != b.salt); // salted: the same password hashes differently
    CHECK(a.hash != b.hash);
    CHECK(bbs::verify_password("secret", a));
    CHECK_FALSE(bbs::verify_password("Secret", a));
    CHECK_FALSE(bbs::verify_password("", a));
    CHECK_FALSE(bbs::verify_password("secret", bbs::decoy_hash(10)));
    auto broken = a;
    broken.hash.pop_back();
    CHECK_FALSE(bbs::verify_password("secret", broken));
}

TEST_CASE("bbs store: users are found case-insensitively, names kept as registered", "[bbs]") {
    bbs::sqlite_store db(":memory:");
    kamaelia::test::users_case_insensitive(db);
}

TEST_CASE("bbs store: SQL metacharacters are data, never SQL", "[bbs]") {
    bbs::sqlite_store db(":memory:");
    kamaelia::test::sql_is_data(db);
}

TEST_CASE("bbs store: read marks order browsing, unread first", "[bbs]") {
    bbs::sqlite_store db(":memory:");
    kamaelia::test::read_marks_order_browsing(db);
}

TEST_CASE("bbs store: replies keep their references, only authors delete", "[bbs]") {
    bbs::sqlite_store db(":memory:");
    kamaelia::test::replies_and_deletes(db);
}

TEST_CASE("bbs store: stats, and every message read a page at a time (bbs-db export, copy)", "[bbs]") {
    temp_dir d;
    bbs::sqlite_store db((d.p / "bbs.sqlite").string()); // a file: its size is in the stats
    kamaelia::test::stats_pages_export(db);
}

TEST_CASE("bbs store: a file database keeps what was committed", "[bbs]") {
    temp_dir t;
    auto path = (t.p / "bbs.sqlite").string();
    std::int64_t id;
    {
        bbs::sqlite_store db(path);
        db.add_user("a", bbs::hash_password("pw", 1));
        id = db.post(msg(1, "a", "kept", "body"));
    }
    bbs::sqlite_store db(path);
    CHECK(db.find_user("a"));
    auto m = db.read(1, id);
    REQUIRE(m);
    CHECK(m->subject == "kept");
    CHECK_THROWS_AS(bbs::sqlite_store((t.p / "no" / "such" / "dir.sqlite").string()), bbs::store_error);
}

TEST_CASE("bbs import: the original's users.passwd and messages/", "[bbs]") {
    temp_dir t;
    write(t.p / "users.passwd", R"({"harry": "password", "dick": "password", "bad": 7})");
    fs::create_directories(t.p / "messages");
    write(t.p / "messages" / ".meta", R"({"maxid": 3})");
    write(
        t.p / "messages" / "3",
        R"({"message": 3, "date": "Sat Jun 27 2009", "from": "dick", "to": "harry", "subject": "Re: hi", "reply-to": [1], "__body__": "hello back"})");
    write(
        t.p / "messages" / "1",
        R"({"message": "1", "date": "Fri Jun 26 2009", "from": "harry", "to": "all", "subject": "hi", "reply-to": [], "__body__": "hello\nworld"})");
    write(t.p / "messages" / "2", "{not json");
    bbs::sqlite_store db(":memory:");
    db.add_user("Dick", bbs::hash_password("old", 1));
    auto r = bbs::import_original(t.p, db, 1);
    CHECK(r.users_added == 1);
    CHECK(r.users_skipped == 1); // dick existed: kept
    CHECK(r.messages_added == 2);
    CHECK(r.warnings.size() >= 3); // "bad", the broken file, dick
    auto harry = db.find_user("harry");
    REQUIRE(harry);
    CHECK(bbs::verify_password("password", harry->password));
    CHECK(bbs::verify_password("old", db.find_user("dick")->password));
    auto all = db.all_messages();
    REQUIRE(all.size() == 2);
    CHECK(all[0].subject == "hi");
    CHECK(all[0].body == "hello\nworld");
    CHECK(all[0].author_id == harry->id);
    CHECK(all[1].subject == "Re: hi");
    CHECK(all[1].reply_to == std::vector<std::int64_t>{all[0].id});
    CHECK_THROWS(bbs::import_original(t.p / "missing", db, 1));
}
