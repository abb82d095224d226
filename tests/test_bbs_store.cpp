// The board's store, password hashing and the importer, without a scheduler.
#include <kamaelia/bbs/import.hpp>
#include <kamaelia/bbs/password.hpp>
#include <kamaelia/bbs/sqlite_store.hpp>

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <random>

namespace bbs = kamaelia::bbs;
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

void write(const fs::path& p, const std::string& text) {
    std::ofstream(p, std::ios::binary) << text;
}

bbs::message_record msg(std::int64_t author, std::string from, std::string subject, std::string body) {
    bbs::message_record m;
    m.date = bbs::format_date(0);
    m.author_id = author;
    m.from = std::move(from);
    m.to = "all";
    m.subject = std::move(subject);
    m.body = std::move(body);
    return m;
}
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
    CHECK(db.add_user("Harry", bbs::hash_password("pw", 1)));
    CHECK_FALSE(db.add_user("harry", bbs::hash_password("other", 1))); // taken
    auto u = db.find_user("HARRY");
    REQUIRE(u);
    CHECK(u->name == "Harry");
    CHECK(bbs::verify_password("pw", u->password));
    CHECK_FALSE(db.find_user("dick"));
    CHECK(db.set_password("harry", bbs::hash_password("new", 1)));
    CHECK(bbs::verify_password("new", db.find_user("harry")->password));
    CHECK_FALSE(db.set_password("nobody", bbs::hash_password("x", 1)));
    CHECK(db.user_count() == 1);
}

TEST_CASE("bbs store: SQL metacharacters are data, never SQL", "[bbs]") {
    bbs::sqlite_store db(":memory:");
    std::string evil = "x'); DROP TABLE messages; --";
    CHECK(db.add_user(evil, bbs::hash_password("pw", 1)));
    REQUIRE(db.find_user(evil));
    CHECK_FALSE(db.find_user("' OR '1'='1"));
    auto id = db.post(msg(1, evil, "\"; DELETE FROM users; --", "a %s %n ' \" \\ body"));
    auto m = db.read(1, id);
    REQUIRE(m);
    CHECK(m->from == evil);
    CHECK(m->subject == "\"; DELETE FROM users; --");
    CHECK(m->body == "a %s %n ' \" \\ body");
    CHECK(db.user_count() == 1);
    CHECK(db.message_count() == 1);
}

TEST_CASE("bbs store: read marks order browsing, unread first", "[bbs]") {
    bbs::sqlite_store db(":memory:");
    db.add_user("a", bbs::hash_password("pw", 1));
    db.add_user("b", bbs::hash_password("pw", 1));
    auto a = db.find_user("a")->id, b = db.find_user("b")->id;
    auto m1 = db.post(msg(a, "a", "one", "1"));
    auto m2 = db.post(msg(a, "a", "two", "2"));
    auto m3 = db.post(msg(b, "b", "three", "3"));
    CHECK(db.unread_count(b) == 2); // b wrote m3: read
    CHECK(db.unread_count(a) == 1);
    REQUIRE(db.read(b, m2));
    CHECK(db.unread_count(b) == 1);
    CHECK(db.unread_count(a) == 1); // per user
    // b browses: unread first, oldest first, then what b has read.
    CHECK(db.next_unread(b, 0) == m1);
    CHECK_FALSE(db.next_unread(b, m1));
    CHECK(db.next_read(b, 0) == m2);
    CHECK(db.next_read(b, m2) == m3);
    CHECK_FALSE(db.next_read(b, m3));
    CHECK(db.read_count(b) == 2);
    REQUIRE(db.read(b, m2)); // reading twice marks once
    CHECK(db.unread_count(b) == 1);
}

TEST_CASE("bbs store: replies keep their references, only authors delete", "[bbs]") {
    bbs::sqlite_store db(":memory:");
    db.add_user("a", bbs::hash_password("pw", 1));
    db.add_user("b", bbs::hash_password("pw", 1));
    auto a = db.find_user("a")->id, b = db.find_user("b")->id;
    auto m1 = db.post(msg(a, "a", "q", "question"));
    auto r = msg(b, "b", "Re: q", "answer");
    r.reply_to = {m1};
    auto m2 = db.post(r);
    REQUIRE(db.read(a, m2)->reply_to == std::vector<std::int64_t>{m1});
    CHECK(db.remove(b, m1) == bbs::delete_result::not_owner);
    CHECK(db.remove(a, m1) == bbs::delete_result::deleted);
    CHECK(db.remove(a, m1) == bbs::delete_result::not_found);
    CHECK_FALSE(db.read(a, m1));
    CHECK(db.read(a, m2)->reply_to == std::vector<std::int64_t>{m1}); // still says what it answered
    auto m3 = db.post(msg(a, "a", "new", "n"));
    CHECK(m3 > m2); // a deleted id is never reused
    CHECK(db.unread_count(a) == 0);
    CHECK(db.unread_count(b) == 1);
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
    write(t.p / "messages" / "3",
          R"({"message": 3, "date": "Sat Jun 27 2009", "from": "dick", "to": "harry", "subject": "Re: hi", "reply-to": [1], "__body__": "hello back"})");
    write(t.p / "messages" / "1",
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
