#include <kamaelia/bbs/pg_store.hpp>

#include <ctime>
#include <initializer_list>
#include <span>
#include <utility>

namespace kamaelia::bbs {

namespace {

// One step per version; a database at version N runs steps N+1.. at open.
// BIGSERIAL, like SQLite's AUTOINCREMENT, never hands out an id twice, so
// read marks and In-Reply-To references never point at the wrong post.
const char* const migrations[] = {
    // 0 -> 1
    "CREATE TABLE bbs_users(id BIGSERIAL PRIMARY KEY, name BYTEA NOT NULL, name_key BYTEA NOT NULL UNIQUE,"
    " salt BYTEA NOT NULL, hash BYTEA NOT NULL, iterations BIGINT NOT NULL, created BIGINT NOT NULL,"
    " last_login BIGINT NOT NULL DEFAULT 0, last_logout BIGINT NOT NULL DEFAULT 0);"
    "CREATE TABLE bbs_messages(id BIGSERIAL PRIMARY KEY, date BYTEA NOT NULL, author_id BIGINT NOT NULL DEFAULT 0,"
    " sender BYTEA NOT NULL, recipient BYTEA NOT NULL, subject BYTEA NOT NULL, body BYTEA NOT NULL);"
    "CREATE TABLE bbs_replies(message_id BIGINT NOT NULL REFERENCES bbs_messages(id) ON DELETE CASCADE,"
    " position BIGINT NOT NULL, reply_to BIGINT NOT NULL, PRIMARY KEY(message_id, position));"
    "CREATE TABLE bbs_read_marks(user_id BIGINT NOT NULL,"
    " message_id BIGINT NOT NULL REFERENCES bbs_messages(id) ON DELETE CASCADE, PRIMARY KEY(user_id, message_id));"
    "CREATE INDEX bbs_read_marks_by_message ON bbs_read_marks(message_id);",
};
static_assert(sizeof(migrations) / sizeof(migrations[0]) == pg_store::schema_version);

constexpr const char* user_columns = "id, name, salt, hash, iterations, last_login";
constexpr const char* message_columns = "id, date, author_id, sender, recipient, subject, body";

// Parameters marked b(...) below go as raw bytes (bytea); the rest as text.
const pg::statement statements[] = {
    {"find_user", "SELECT id, name, salt, hash, iterations, last_login FROM bbs_users WHERE name_key = $1", 1},
    {"add_user",
     "INSERT INTO bbs_users(name, name_key, salt, hash, iterations, created) VALUES($1, $2, $3, $4, $5, $6)"
     " ON CONFLICT(name_key) DO NOTHING",
     6},
    {"set_password", "UPDATE bbs_users SET salt = $1, hash = $2, iterations = $3 WHERE name_key = $4", 4},
    {"note_login", "UPDATE bbs_users SET last_login = $1 WHERE id = $2", 2},
    {"note_logout", "UPDATE bbs_users SET last_logout = $1 WHERE id = $2", 2},
    {"user_count", "SELECT count(*) FROM bbs_users", 0},
    {"post",
     "INSERT INTO bbs_messages(date, author_id, sender, recipient, subject, body) VALUES($1, $2, $3, $4, $5, $6)"
     " RETURNING id",
     6},
    {"post_reply",
     "INSERT INTO bbs_replies(message_id, position, reply_to) VALUES($1, $2, $3)"
     " ON CONFLICT DO NOTHING",
     3},
    {"next_unread",
     "SELECT m.id FROM bbs_messages m WHERE m.id > $2 AND NOT EXISTS"
     " (SELECT 1 FROM bbs_read_marks r WHERE r.user_id = $1 AND r.message_id = m.id) ORDER BY m.id LIMIT 1",
     2},
    {"next_read",
     "SELECT message_id FROM bbs_read_marks WHERE user_id = $1 AND message_id > $2 ORDER BY message_id LIMIT 1", 2},
    {"read_count", "SELECT count(*) FROM bbs_read_marks WHERE user_id = $1", 1},
    {"get", "SELECT id, date, author_id, sender, recipient, subject, body FROM bbs_messages WHERE id = $1", 1},
    {"mark", "INSERT INTO bbs_read_marks(user_id, message_id) VALUES($1, $2) ON CONFLICT DO NOTHING", 2},
    {"replies_of", "SELECT reply_to FROM bbs_replies WHERE message_id = $1 ORDER BY position", 1},
    {"author_of", "SELECT author_id FROM bbs_messages WHERE id = $1", 1},
    {"delete", "DELETE FROM bbs_messages WHERE id = $1 AND author_id = $2", 2},
    {"message_count", "SELECT count(*) FROM bbs_messages", 0},
    {"messages_after",
     "SELECT id, date, author_id, sender, recipient, subject, body FROM bbs_messages WHERE id > $1 ORDER BY id"
     " LIMIT $2",
     2},
    {"replies_after",
     "SELECT message_id, reply_to FROM bbs_replies WHERE message_id > $1 AND message_id <= $2"
     " ORDER BY message_id, position",
     2},
    {"restore_user",
     "INSERT INTO bbs_users(id, name, name_key, salt, hash, iterations, created, last_login)"
     " VALUES($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
     8},
    {"restore_message",
     "INSERT INTO bbs_messages(id, date, author_id, sender, recipient, subject, body)"
     " VALUES($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
     7},
};

// Bit i set: parameter i is bytes.
constexpr unsigned b(std::initializer_list<int> params) {
    unsigned m = 0;
    for (int i : params) m |= 1u << i;
    return m;
}

using args = std::initializer_list<std::string>;
std::span<const std::string> span_of(args a) { return {a.begin(), a.size()}; }
std::string num(std::int64_t v) { return std::to_string(v); }

pg::database::options db_options(pg_store::options o) {
    o.label = "board";
    o.application_name = "kamaelia-bbs";
    return o;
}

[[noreturn]] void raise(const std::string& message) { throw store_error(message); }

user_record row_to_user(const pg::result& r, int i) {
    user_record u;
    u.id = r.i64(i, 0);
    u.name = r.bytes(i, 1);
    u.password.salt = r.bytes(i, 2);
    u.password.hash = r.bytes(i, 3);
    u.password.iterations = static_cast<std::uint32_t>(r.i64(i, 4));
    u.last_login = r.i64(i, 5);
    return u;
}

message_record row_to_message(const pg::result& r, int i) {
    message_record m;
    m.id = r.i64(i, 0);
    m.date = r.bytes(i, 1);
    m.author_id = r.i64(i, 2);
    m.from = r.bytes(i, 3);
    m.to = r.bytes(i, 4);
    m.subject = r.bytes(i, 5);
    m.body = r.bytes(i, 6);
    return m;
}

} // namespace

pg_store::pg_store(const options& o) : db_(db_options(o), raise) {
    db_.migrate("bbs", migrations, false);
    db_.prepare(statements);
}

pg_store::~pg_store() = default;

void pg_store::begin() { db_.begin(statements); }
void pg_store::commit() { db_.commit(); }
void pg_store::rollback() noexcept { db_.rollback(); }
bool pg_store::in_transaction() const noexcept { return db_.in_transaction(); }

template <class F>
auto pg_store::atomically(F&& f) {
    if (db_.in_transaction()) return f();
    // The caller's transaction was spoiled by an earlier failure: going on
    // in a fresh one would commit half of the caller's work.
    if (db_.in_failed_transaction()) db_.fail_with("is failing (an earlier statement of this transaction failed)");
    db_.begin(statements);
    try {
        auto r = f();
        db_.commit();
        return r;
    } catch (...) {
        db_.rollback();
        throw;
    }
}

std::optional<user_record> pg_store::find_user(std::string_view name) {
    return atomically([&]() -> std::optional<user_record> {
        auto r = db_.run("find_user", span_of({user_key(name)}), "find user", b({0}));
        if (r.rows() == 0) return std::nullopt;
        return row_to_user(r, 0);
    });
}

bool pg_store::add_user(std::string_view name, const password_hash& pw) {
    return atomically([&] {
        auto r = db_.run("add_user",
                         span_of({std::string(name), user_key(name), pw.salt, pw.hash, num(pw.iterations),
                                  num(static_cast<std::int64_t>(std::time(nullptr)))}),
                         "add user", b({0, 1, 2, 3}));
        return r.affected() == 1;
    });
}

bool pg_store::set_password(std::string_view name, const password_hash& pw) {
    return atomically([&] {
        auto r = db_.run("set_password", span_of({pw.salt, pw.hash, num(pw.iterations), user_key(name)}),
                         "set password", b({0, 1, 3}));
        return r.affected() == 1;
    });
}

void pg_store::note_login(std::int64_t user_id, std::int64_t when) {
    atomically([&] { return db_.run("note_login", span_of({num(when), num(user_id)}), "note login"); });
}

void pg_store::note_logout(std::int64_t user_id, std::int64_t when) {
    atomically([&] { return db_.run("note_logout", span_of({num(when), num(user_id)}), "note logout"); });
}

std::size_t pg_store::user_count() {
    return atomically([&] { return static_cast<std::size_t>(db_.run("user_count", {}, "count users").i64(0, 0)); });
}

std::int64_t pg_store::post(const message_record& m) {
    return atomically([&] {
        std::int64_t id = db_.run("post", span_of({m.date, num(m.author_id), m.from, m.to, m.subject, m.body}), "post",
                                  b({0, 2, 3, 4, 5}))
                              .i64(0, 0);
        std::int64_t pos = 0;
        for (std::int64_t r : m.reply_to) db_.run("post_reply", span_of({num(id), num(pos++), num(r)}), "post");
        if (m.author_id) db_.run("mark", span_of({num(m.author_id), num(id)}), "post"); // the author has read it
        return id;
    });
}

std::optional<std::int64_t> pg_store::next_unread(std::int64_t user_id, std::int64_t after) {
    return atomically([&]() -> std::optional<std::int64_t> {
        auto r = db_.run("next_unread", span_of({num(user_id), num(after)}), "browse");
        if (r.rows() == 0) return std::nullopt;
        return r.i64(0, 0);
    });
}

std::optional<std::int64_t> pg_store::next_read(std::int64_t user_id, std::int64_t after) {
    return atomically([&]() -> std::optional<std::int64_t> {
        auto r = db_.run("next_read", span_of({num(user_id), num(after)}), "browse");
        if (r.rows() == 0) return std::nullopt;
        return r.i64(0, 0);
    });
}

std::size_t pg_store::read_count(std::int64_t user_id) {
    return atomically([&] {
        return static_cast<std::size_t>(db_.run("read_count", span_of({num(user_id)}), "count read").i64(0, 0));
    });
}

std::size_t pg_store::unread_count(std::int64_t user_id) {
    // Read marks go with their message: a difference of two counts.
    return atomically([&] {
        std::size_t total = message_count(), seen = read_count(user_id);
        return total > seen ? total - seen : 0;
    });
}

std::vector<std::int64_t> pg_store::replies_of(std::int64_t id) {
    std::vector<std::int64_t> out;
    auto r = db_.run("replies_of", span_of({num(id)}), "read replies");
    for (int i = 0, n = r.rows(); i < n; ++i) out.push_back(r.i64(i, 0));
    return out;
}

std::optional<message_record> pg_store::read(std::int64_t user_id, std::int64_t message_id) {
    return atomically([&]() -> std::optional<message_record> {
        auto r = db_.run("get", span_of({num(message_id)}), "read");
        if (r.rows() == 0) return std::nullopt;
        message_record m = row_to_message(r, 0);
        m.reply_to = replies_of(message_id);
        db_.run("mark", span_of({num(user_id), num(message_id)}), "mark read");
        return m;
    });
}

delete_result pg_store::remove(std::int64_t user_id, std::int64_t message_id) {
    return atomically([&] {
        auto a = db_.run("author_of", span_of({num(message_id)}), "delete");
        if (a.rows() == 0) return delete_result::not_found;
        if (a.i64(0, 0) != user_id || user_id == 0) return delete_result::not_owner;
        auto r = db_.run("delete", span_of({num(message_id), num(user_id)}), "delete");
        return r.affected() == 1 ? delete_result::deleted : delete_result::not_found;
    });
}

std::size_t pg_store::message_count() {
    return atomically(
        [&] { return static_cast<std::size_t>(db_.run("message_count", {}, "count messages").i64(0, 0)); });
}

std::vector<message_record> pg_store::all_messages() {
    return atomically([&] {
        std::string q = std::string("SELECT ") + message_columns + " FROM bbs_messages ORDER BY id";
        auto r = db_.exec(q.c_str(), "list messages");
        std::vector<message_record> out;
        for (int i = 0, n = r.rows(); i < n; ++i) out.push_back(row_to_message(r, i));
        for (auto& m : out) m.reply_to = replies_of(m.id);
        return out;
    });
}

std::vector<message_record> pg_store::messages_after(std::int64_t after, std::size_t limit) {
    // One transaction: the page and its replies from one snapshot.
    return atomically([&] {
        std::vector<message_record> out;
        auto r = db_.run("messages_after", span_of({num(after), std::to_string(limit)}), "list messages");
        for (int i = 0, n = r.rows(); i < n; ++i) out.push_back(row_to_message(r, i));
        if (out.empty()) return out;
        auto rp = db_.run("replies_after", span_of({num(after), num(out.back().id)}), "list messages");
        std::size_t at = 0;
        for (int i = 0, n = rp.rows(); i < n; ++i) {
            std::int64_t id = rp.i64(i, 0);
            while (at < out.size() && out[at].id < id) ++at;
            if (at < out.size() && out[at].id == id) out[at].reply_to.push_back(rp.i64(i, 1));
        }
        return out;
    });
}

board_stats pg_store::stats() {
    return atomically([&] {
        auto r = db_.exec(
            "SELECT (SELECT count(*) FROM bbs_users), (SELECT count(*) FROM bbs_messages),"
            " (SELECT count(*) FROM bbs_replies), (SELECT count(*) FROM bbs_read_marks),"
            " coalesce((SELECT min(id) FROM bbs_messages), 0), coalesce((SELECT max(id) FROM bbs_messages), 0),"
            " pg_total_relation_size('bbs_users') + pg_total_relation_size('bbs_messages') +"
            " pg_total_relation_size('bbs_replies') + pg_total_relation_size('bbs_read_marks')",
            "stats");
        board_stats st;
        st.users = static_cast<std::uint64_t>(r.i64(0, 0));
        st.messages = static_cast<std::uint64_t>(r.i64(0, 1));
        st.replies = static_cast<std::uint64_t>(r.i64(0, 2));
        st.read_marks = static_cast<std::uint64_t>(r.i64(0, 3));
        st.first_id = r.i64(0, 4);
        st.last_id = r.i64(0, 5);
        st.bytes = static_cast<std::uint64_t>(r.i64(0, 6));
        st.schema_version = schema_version;
        return st;
    });
}

void pg_store::for_each_user(const std::function<void(const user_record&)>& f) {
    db_.ensure(statements);
    std::string q = std::string("SELECT ") + user_columns + " FROM bbs_users ORDER BY id";
    auto r = db_.exec(q.c_str(), "list users");
    for (int i = 0, n = r.rows(); i < n; ++i) f(row_to_user(r, i));
}

void pg_store::for_each_read_mark(const std::function<void(std::int64_t, std::int64_t)>& f) {
    db_.ensure(statements);
    auto r = db_.exec("SELECT user_id, message_id FROM bbs_read_marks ORDER BY user_id, message_id", "list read marks");
    for (int i = 0, n = r.rows(); i < n; ++i) f(r.i64(i, 0), r.i64(i, 1));
}

void pg_store::restore_user(const user_record& u) {
    atomically([&] {
        return db_.run(
            "restore_user",
            span_of({num(u.id), u.name, user_key(u.name), u.password.salt, u.password.hash, num(u.password.iterations),
                     num(static_cast<std::int64_t>(std::time(nullptr))), num(u.last_login)}),
            "copy user", b({1, 2, 3, 4}));
    });
}

void pg_store::restore_message(const message_record& m) {
    atomically([&] {
        auto r =
            db_.run("restore_message", span_of({num(m.id), m.date, num(m.author_id), m.from, m.to, m.subject, m.body}),
                    "copy message", b({1, 3, 4, 5, 6}));
        std::int64_t pos = 0;
        for (std::int64_t to : m.reply_to)
            db_.run("post_reply", span_of({num(m.id), num(pos++), num(to)}), "copy message");
        return r;
    });
}

void pg_store::restore_read_mark(std::int64_t user_id, std::int64_t message_id) {
    atomically([&] { return db_.run("mark", span_of({num(user_id), num(message_id)}), "copy read mark"); });
}

void pg_store::finish_restore() {
    atomically([&] {
        return db_.exec("SELECT setval(pg_get_serial_sequence('bbs_users', 'id'),"
                        " greatest((SELECT max(id) FROM bbs_users), 1), (SELECT count(*) > 0 FROM bbs_users));"
                        "SELECT setval(pg_get_serial_sequence('bbs_messages', 'id'),"
                        " greatest((SELECT max(id) FROM bbs_messages), 1), (SELECT count(*) > 0 FROM bbs_messages))",
                        "copy: move the id sequences");
    });
}

} // namespace kamaelia::bbs
