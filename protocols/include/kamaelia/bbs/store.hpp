// The bulletin board's SQLite store: users, messages, replies, read marks.
//
// Blocking and single-threaded: the board uses it from its one database
// thread (see board.hpp); the command-line tools (bbs-user, bbs-import) use
// it directly. WAL journal, synchronous=FULL: a call that returned has been
// committed and fsynced, so an acknowledged post survives kill -9 (and a
// power cut). Every statement is prepared once with bound parameters.
#pragma once

#include <kamaelia/bbs/password.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace kamaelia::bbs {

class store_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct user_record {
    std::int64_t id = 0;
    std::string name; // as first registered
    password_hash password;
    std::int64_t last_login = 0; // unix seconds, 0: never
};

struct message_record {
    std::int64_t id = 0;
    std::string date; // "YYYY-MM-DD HH:MM:SS" UTC for new posts; imported as it was
    std::int64_t author_id = 0; // 0: no local account (imported)
    std::string from;
    std::string to;
    std::string subject;
    std::string body;
    std::vector<std::int64_t> reply_to;
};

enum class delete_result { deleted, not_found, not_owner };

// The lower-case key a name is looked up by (ASCII letters only change).
std::string user_key(std::string_view name);
// "YYYY-MM-DD HH:MM:SS" in UTC.
std::string format_date(std::int64_t unix_seconds);

class store {
public:
    // Opens or creates the database (":memory:" for tests). Throws store_error.
    explicit store(const std::string& path);
    ~store();
    store(const store&) = delete;
    store& operator=(const store&) = delete;

    const std::string& path() const noexcept { return path_; }

    // ---- users -------------------------------------------------------------
    std::optional<user_record> find_user(std::string_view name);
    // False if the name (case-insensitively) is taken.
    bool add_user(std::string_view name, const password_hash& pw);
    // False if there is no such user.
    bool set_password(std::string_view name, const password_hash& pw);
    void note_login(std::int64_t user_id, std::int64_t when);
    void note_logout(std::int64_t user_id, std::int64_t when);
    std::size_t user_count();

    // ---- messages ------------------------------------------------------------
    // Inserts and commits; returns the new id. reply_to ids need not exist.
    // The author has read it.
    std::int64_t post(const message_record& m);
    // Browsing, one message at a time (never the whole board in memory):
    // the oldest message `user_id` has not read with an id above `after`,
    // and the oldest one already read above `after`. Index lookups.
    std::optional<std::int64_t> next_unread(std::int64_t user_id, std::int64_t after);
    std::optional<std::int64_t> next_read(std::int64_t user_id, std::int64_t after);
    std::size_t unread_count(std::int64_t user_id);
    std::size_t read_count(std::int64_t user_id);
    // The message, marked read by `user_id` (nullopt if it is gone).
    std::optional<message_record> read(std::int64_t user_id, std::int64_t message_id);
    // Only the author may delete; replies to it keep their In-Reply-To.
    delete_result remove(std::int64_t user_id, std::int64_t message_id);
    std::size_t message_count();
    std::vector<message_record> all_messages(); // by id (tests, tools)

    // ---- transactions (the importer groups its inserts) -------------------
    void begin();
    void commit();
    void rollback() noexcept;
    // A transaction is open (false again if SQLite rolled it back itself,
    // as it does on some I/O errors).
    bool in_transaction() const noexcept;

    // Thread-safe: makes a running statement on the database thread fail.
    void interrupt() noexcept;

private:
    class statement;
    statement& stmt(int which);
    void exec(const char* sql);
    void check_sound(); // writable and not corrupt, or store_error
    std::vector<std::int64_t> replies_of(std::int64_t id);

    std::string path_;
    sqlite3* db_ = nullptr;
    std::vector<std::unique_ptr<statement>> stmts_;
};

} // namespace kamaelia::bbs
