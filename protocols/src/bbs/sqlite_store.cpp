#include <kamaelia/bbs/sqlite_store.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <ctime>
#include <filesystem>
#include <utility>

namespace kamaelia::bbs {

std::string user_key(std::string_view name) {
    std::string k(name);
    for (char& c : k) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return k;
}

std::string format_date(std::int64_t unix_seconds) {
    std::time_t t = static_cast<std::time_t>(unix_seconds);
    std::tm tm{};
    gmtime_r(&t, &tm);
    std::array<char, 32> buf{};
    std::strftime(buf.data(), buf.size(), "%Y-%m-%d %H:%M:%S", &tm);
    return buf.data();
}

namespace {

const char* const schema = R"sql(
CREATE TABLE IF NOT EXISTS users(
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  name_key TEXT NOT NULL UNIQUE,
  salt BLOB NOT NULL,
  hash BLOB NOT NULL,
  iterations INTEGER NOT NULL,
  created INTEGER NOT NULL,
  last_login INTEGER NOT NULL DEFAULT 0,
  last_logout INTEGER NOT NULL DEFAULT 0);
-- AUTOINCREMENT: the id of a deleted message is never given to a new one,
-- so read marks and In-Reply-To references never point at the wrong post.
CREATE TABLE IF NOT EXISTS messages(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  date TEXT NOT NULL,
  author_id INTEGER NOT NULL DEFAULT 0,
  sender TEXT NOT NULL,
  recipient TEXT NOT NULL,
  subject TEXT NOT NULL,
  body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS replies(
  message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  position INTEGER NOT NULL,
  reply_to INTEGER NOT NULL,
  PRIMARY KEY(message_id, position)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS read_marks(
  user_id INTEGER NOT NULL,
  message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  PRIMARY KEY(user_id, message_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS read_marks_by_message ON read_marks(message_id);
)sql";

enum sql_id {
    q_find_user,
    q_add_user,
    q_set_password,
    q_note_login,
    q_note_logout,
    q_user_count,
    q_post,
    q_post_reply,
    q_next_unread,
    q_next_read,
    q_read_count,
    q_get,
    q_mark,
    q_replies_of,
    q_author_of,
    q_delete,
    q_message_count,
    q_all,
    q_all_users,
    q_all_marks,
    q_messages_after,
    q_replies_after,
    q_stats,
    q_savepoint,
    q_release,
    q_rollback_to,
    q_count
};

const char* const sql_text[q_count] = {
    "SELECT id, name, salt, hash, iterations, last_login FROM users WHERE name_key = ?1",
    "INSERT OR IGNORE INTO users(name, name_key, salt, hash, iterations, created) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
    "UPDATE users SET salt = ?1, hash = ?2, iterations = ?3 WHERE name_key = ?4",
    "UPDATE users SET last_login = ?1 WHERE id = ?2",
    "UPDATE users SET last_logout = ?1 WHERE id = ?2",
    "SELECT count(*) FROM users",
    "INSERT INTO messages(date, author_id, sender, recipient, subject, body) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
    "INSERT INTO replies(message_id, position, reply_to) VALUES(?1, ?2, ?3)",
    "SELECT m.id FROM messages m WHERE m.id > ?2 AND NOT EXISTS "
    "(SELECT 1 FROM read_marks r WHERE r.user_id = ?1 AND r.message_id = m.id) ORDER BY m.id LIMIT 1",
    "SELECT message_id FROM read_marks WHERE user_id = ?1 AND message_id > ?2 ORDER BY message_id LIMIT 1",
    "SELECT count(*) FROM read_marks WHERE user_id = ?1",
    "SELECT id, date, author_id, sender, recipient, subject, body FROM messages WHERE id = ?1",
    "INSERT OR IGNORE INTO read_marks(user_id, message_id) VALUES(?1, ?2)",
    "SELECT reply_to FROM replies WHERE message_id = ?1 ORDER BY position",
    "SELECT author_id FROM messages WHERE id = ?1",
    "DELETE FROM messages WHERE id = ?1 AND author_id = ?2",
    "SELECT count(*) FROM messages",
    "SELECT id, date, author_id, sender, recipient, subject, body FROM messages ORDER BY id",
    "SELECT id, name, salt, hash, iterations, last_login FROM users ORDER BY id",
    "SELECT user_id, message_id FROM read_marks ORDER BY user_id, message_id",
    "SELECT id, date, author_id, sender, recipient, subject, body FROM messages WHERE id > ?1 ORDER BY id LIMIT ?2",
    "SELECT message_id, reply_to FROM replies WHERE message_id > ?1 AND message_id <= ?2"
    " ORDER BY message_id, position",
    "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM messages), (SELECT count(*) FROM replies),"
    " (SELECT count(*) FROM read_marks), coalesce((SELECT min(id) FROM messages), 0),"
    " coalesce((SELECT max(id) FROM messages), 0)",
    "SAVEPOINT bbs_op",
    "RELEASE bbs_op",
    "ROLLBACK TO bbs_op",
};

} // namespace

using statement = sqlite::statement;

namespace {

sqlite::database::options db_options() {
    sqlite::database::options d;
    d.label = "board";
    d.busy_timeout_ms = 5000; // a tool writing while the daemon runs waits its turn
    return d;
}

[[noreturn]] void raise(const std::string& message) { throw store_error(message); }

} // namespace

sqlite_store::sqlite_store(const std::string& path) : path_(path), db_(path, db_options(), raise) {
    db_.exec("PRAGMA journal_mode = WAL");
    db_.exec("PRAGMA synchronous = FULL"); // a commit that returned is on disk
    db_.exec("PRAGMA foreign_keys = ON");
    db_.exec(schema);
    // At start-up, not at a user's first post: a board that cannot write or
    // is damaged refuses to start with the reason instead of failing its users.
    db_.check_sound();
    stmts_.resize(q_count);
}

sqlite_store::~sqlite_store() = default;

statement& sqlite_store::stmt(int which) {
    auto& s = stmts_[static_cast<std::size_t>(which)];
    if (!s) s = std::make_unique<statement>(db_, sql_text[which]);
    return *s;
}

void sqlite_store::begin() { db_.exec("BEGIN IMMEDIATE"); }
void sqlite_store::commit() { db_.exec("COMMIT"); }
void sqlite_store::rollback() noexcept {
    try {
        db_.exec("ROLLBACK");
    } catch (...) {}
}
bool sqlite_store::in_transaction() const noexcept { return db_.in_transaction(); }
void sqlite_store::interrupt() noexcept { db_.interrupt(); }

namespace {
template <class Q>
user_record row_to_user(const Q& q) {
    user_record u;
    u.id = q.i64(0);
    u.name = q.text(1);
    u.password.salt = q.text(2);
    u.password.hash = q.text(3);
    u.password.iterations = static_cast<std::uint32_t>(q.i64(4));
    u.last_login = q.i64(5);
    return u;
}
} // namespace

std::optional<user_record> sqlite_store::find_user(std::string_view name) {
    statement::use q(stmt(q_find_user));
    q.bind(1, user_key(name));
    if (!q.step()) return std::nullopt;
    return row_to_user(q);
}

void sqlite_store::for_each_user(const std::function<void(const user_record&)>& f) {
    statement::use q(stmt(q_all_users));
    while (q.step()) f(row_to_user(q));
}

void sqlite_store::for_each_read_mark(const std::function<void(std::int64_t, std::int64_t)>& f) {
    statement::use q(stmt(q_all_marks));
    while (q.step()) f(q.i64(0), q.i64(1));
}

bool sqlite_store::add_user(std::string_view name, const password_hash& pw) {
    statement::use q(stmt(q_add_user));
    q.bind(1, name).bind(2, user_key(name)).blob(3, pw.salt).blob(4, pw.hash);
    q.bind(5, static_cast<std::int64_t>(pw.iterations)).bind(6, static_cast<std::int64_t>(std::time(nullptr)));
    q.run();
    return db_.changes() == 1;
}

bool sqlite_store::set_password(std::string_view name, const password_hash& pw) {
    statement::use q(stmt(q_set_password));
    q.blob(1, pw.salt).blob(2, pw.hash).bind(3, static_cast<std::int64_t>(pw.iterations)).bind(4, user_key(name));
    q.run();
    return db_.changes() == 1;
}

void sqlite_store::note_login(std::int64_t user_id, std::int64_t when) {
    statement::use q(stmt(q_note_login));
    q.bind(1, when).bind(2, user_id).run();
}

void sqlite_store::note_logout(std::int64_t user_id, std::int64_t when) {
    statement::use q(stmt(q_note_logout));
    q.bind(1, when).bind(2, user_id).run();
}

std::size_t sqlite_store::user_count() {
    statement::use q(stmt(q_user_count));
    q.step();
    return static_cast<std::size_t>(q.i64(0));
}

std::int64_t sqlite_store::post(const message_record& m) {
    // A savepoint: its own transaction in autocommit mode, nested inside
    // the importer's.
    { statement::use(stmt(q_savepoint)).run(); }
    try {
        std::int64_t id;
        {
            statement::use q(stmt(q_post));
            q.bind(1, m.date).bind(2, m.author_id).bind(3, m.from).bind(4, m.to).bind(5, m.subject).bind(6, m.body);
            q.run();
            id = db_.last_insert_rowid();
        }
        std::int64_t pos = 0;
        for (std::int64_t r : m.reply_to) {
            statement::use q(stmt(q_post_reply));
            q.bind(1, id).bind(2, pos++).bind(3, r).run();
        }
        if (m.author_id) { // an author has read what they wrote
            statement::use q(stmt(q_mark));
            q.bind(1, m.author_id).bind(2, id).run();
        }
        statement::use(stmt(q_release)).run();
        return id;
    } catch (...) {
        try {
            statement::use(stmt(q_rollback_to)).run();
            statement::use(stmt(q_release)).run();
        } catch (...) {}
        throw;
    }
}

std::optional<std::int64_t> sqlite_store::next_unread(std::int64_t user_id, std::int64_t after) {
    statement::use q(stmt(q_next_unread));
    q.bind(1, user_id).bind(2, after);
    if (!q.step()) return std::nullopt;
    return q.i64(0);
}

std::optional<std::int64_t> sqlite_store::next_read(std::int64_t user_id, std::int64_t after) {
    statement::use q(stmt(q_next_read));
    q.bind(1, user_id).bind(2, after);
    if (!q.step()) return std::nullopt;
    return q.i64(0);
}

std::size_t sqlite_store::read_count(std::int64_t user_id) {
    statement::use q(stmt(q_read_count));
    q.bind(1, user_id);
    q.step();
    return static_cast<std::size_t>(q.i64(0));
}

std::size_t sqlite_store::unread_count(std::int64_t user_id) {
    // Read marks exist only for messages that exist (they go with their
    // message): a difference of two counts, no scan joining the two.
    std::size_t total = message_count(), seen = read_count(user_id);
    return total > seen ? total - seen : 0;
}

std::vector<std::int64_t> sqlite_store::replies_of(std::int64_t id) {
    std::vector<std::int64_t> out;
    statement::use q(stmt(q_replies_of));
    q.bind(1, id);
    while (q.step()) out.push_back(q.i64(0));
    return out;
}

namespace {
template <class Q>
message_record row_to_message(const Q& q) {
    message_record m;
    m.id = q.i64(0);
    m.date = q.text(1);
    m.author_id = q.i64(2);
    m.from = q.text(3);
    m.to = q.text(4);
    m.subject = q.text(5);
    m.body = q.text(6);
    return m;
}
} // namespace

std::optional<message_record> sqlite_store::read(std::int64_t user_id, std::int64_t message_id) {
    std::optional<message_record> m;
    {
        statement::use q(stmt(q_get));
        q.bind(1, message_id);
        if (!q.step()) return std::nullopt;
        m = row_to_message(q);
    }
    m->reply_to = replies_of(message_id);
    statement::use mark(stmt(q_mark));
    mark.bind(1, user_id).bind(2, message_id).run();
    return m;
}

delete_result sqlite_store::remove(std::int64_t user_id, std::int64_t message_id) {
    {
        statement::use q(stmt(q_author_of));
        q.bind(1, message_id);
        if (!q.step()) return delete_result::not_found;
        if (q.i64(0) != user_id || user_id == 0) return delete_result::not_owner;
    }
    statement::use q(stmt(q_delete));
    q.bind(1, message_id).bind(2, user_id).run();
    return db_.changes() == 1 ? delete_result::deleted : delete_result::not_found;
}

std::size_t sqlite_store::message_count() {
    statement::use q(stmt(q_message_count));
    q.step();
    return static_cast<std::size_t>(q.i64(0));
}

std::vector<message_record> sqlite_store::all_messages() {
    std::vector<message_record> out;
    {
        statement::use q(stmt(q_all));
        while (q.step()) out.push_back(row_to_message(q));
    }
    for (auto& m : out) m.reply_to = replies_of(m.id);
    return out;
}

} // namespace kamaelia::bbs

namespace kamaelia::bbs {

std::vector<message_record> sqlite_store::messages_after(std::int64_t after, std::size_t limit) {
    std::vector<message_record> out;
    {
        statement::use q(stmt(q_messages_after));
        q.bind(1, after).bind(2, static_cast<std::int64_t>(std::min<std::size_t>(limit, INT64_MAX)));
        while (q.step()) out.push_back(row_to_message(q));
    }
    if (out.empty()) return out;
    // The page's replies in one query, merged by id (both sorted).
    statement::use q(stmt(q_replies_after));
    q.bind(1, after).bind(2, out.back().id);
    std::size_t i = 0;
    while (q.step()) {
        std::int64_t id = q.i64(0);
        while (i < out.size() && out[i].id < id) ++i;
        if (i < out.size() && out[i].id == id) out[i].reply_to.push_back(q.i64(1));
    }
    return out;
}

board_stats sqlite_store::stats() {
    board_stats st;
    {
        statement::use q(stmt(q_stats));
        q.step();
        st.users = static_cast<std::uint64_t>(q.i64(0));
        st.messages = static_cast<std::uint64_t>(q.i64(1));
        st.replies = static_cast<std::uint64_t>(q.i64(2));
        st.read_marks = static_cast<std::uint64_t>(q.i64(3));
        st.first_id = q.i64(4);
        st.last_id = q.i64(5);
    }
    std::error_code ec;
    for (const char* suffix : {"", "-wal"}) {
        auto n = std::filesystem::file_size(path_ + suffix, ec);
        if (!ec) st.bytes += n;
    }
    return st;
}

} // namespace kamaelia::bbs
