// What every board store does (SQLite, PostgreSQL): each check runs on an
// empty store of either kind (tests/test_bbs_store.cpp, tests/test_bbs_pg_store.cpp).
#pragma once

#include <kamaelia/bbs/export.hpp>
#include <kamaelia/bbs/password.hpp>
#include <kamaelia/bbs/store.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace kamaelia::test {

namespace bbs = kamaelia::bbs;

inline bbs::message_record msg(std::int64_t author, std::string from, std::string subject, std::string body) {
    bbs::message_record m;
    m.date = bbs::format_date(0);
    m.author_id = author;
    m.from = std::move(from);
    m.to = "all";
    m.subject = std::move(subject);
    m.body = std::move(body);
    return m;
}

inline void users_case_insensitive(bbs::store& db) {
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

inline void sql_is_data(bbs::store& db) {
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

inline void read_marks_order_browsing(bbs::store& db) {
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

inline void replies_and_deletes(bbs::store& db) {
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

// stats, and the pages the tools read a board by (bbs-db export and copy):
// every message once, in id order, with its replies, whatever the page size.
inline void stats_pages_export(bbs::store& db) {
    auto empty = db.stats();
    CHECK(empty.messages == 0);
    CHECK(empty.first_id == 0);
    CHECK(db.messages_after(0, 10).empty());
    CHECK(db.add_user("ann", bbs::hash_password("pw", 1)));
    auto ann = db.find_user("ann")->id;
    std::vector<std::int64_t> ids;
    for (int i = 0; i < 12; ++i) {
        auto m = msg(ann, "ann", "s" + std::to_string(i), i == 3 ? "caf\xc3\xa9 \"quoted\"\nline" : "b");
        if (i > 0) m.reply_to = {ids.back(), ids.front()};
        ids.push_back(db.post(m));
    }
    REQUIRE(db.remove(ann, ids[5]) == bbs::delete_result::deleted); // a gap in the ids
    auto st = db.stats();
    CHECK(st.users == 1);
    CHECK(st.messages == 11);
    CHECK(st.replies == 20);    // 11 messages with 2 references each, less the deleted one's
    CHECK(st.read_marks == 11); // the author has read what he posted
    CHECK(st.first_id == ids.front());
    CHECK(st.last_id == ids.back());
    CHECK(st.bytes > 0);
    for (std::size_t page : {1u, 4u, 5u, 500u}) {
        std::vector<bbs::message_record> seen;
        CHECK(bbs::for_each_message(
                  db, [&](const bbs::message_record& m) { seen.push_back(m); }, page) == 11);
        REQUIRE(seen.size() == 11);
        for (std::size_t i = 1; i < seen.size(); ++i) CHECK(seen[i - 1].id < seen[i].id);
        CHECK(seen[0].reply_to.empty());
        CHECK(seen[6].id == ids[7]);
        CHECK(seen[6].reply_to == std::vector<std::int64_t>{ids[6], ids[0]});
        CHECK(seen[3].body == "caf\xc3\xa9 \"quoted\"\nline");
    }
    auto page = db.messages_after(ids[4], 2);
    REQUIRE(page.size() == 2);
    CHECK(page[0].id == ids[6]);
    CHECK(page[1].id == ids[7]);
    std::ostringstream out;
    CHECK(bbs::export_messages(db, out, 4) == 11);
    std::string text = out.str();
    CHECK(std::count(text.begin(), text.end(), '\n') == 11);
    CHECK(text.find("{\"__body__\":\"caf\xc3\xa9 \\\"quoted\\\"\\nline\",\"date\":") != std::string::npos);
    CHECK(text.find("\"message\":" + std::to_string(ids[5]) + ",") == std::string::npos);
    CHECK(text.find("\"reply-to\":[" + std::to_string(ids[6]) + "," + std::to_string(ids[0]) + "]") !=
          std::string::npos);
}

} // namespace kamaelia::test
