// The bulletin board's store: users, messages, replies, read marks.
//
// An interface: the board reaches it only through its store service (see
// service.hpp), so the engine behind it is a start-up choice. The SQLite one
// is sqlite_store.hpp; the PostgreSQL one (several hosts on one board) is
// pg_store.hpp. Blocking and single-threaded: the service calls it from its one
// thread; the command-line tools (bbs-user, bbs-import) call it directly.
// A call that returned outside a transaction has been committed durably.
// Failures throw store_error.
#pragma once

#include <kamaelia/bbs/password.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

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
    std::string date;           // "YYYY-MM-DD HH:MM:SS" UTC for new posts; imported as it was
    std::int64_t author_id = 0; // 0: no local account (imported)
    std::string from;
    std::string to;
    std::string subject;
    std::string body;
    std::vector<std::int64_t> reply_to;
};

enum class delete_result { deleted, not_found, not_owner };

// What `kamaelia bbs-db stats` shows.
struct board_stats {
    std::uint64_t users = 0;
    std::uint64_t messages = 0;
    std::uint64_t replies = 0; // In-Reply-To references
    std::uint64_t read_marks = 0;
    std::int64_t first_id = 0; // lowest and highest message id (0: no messages)
    std::int64_t last_id = 0;
    int schema_version = 0;  // 0: the store keeps none (SQLite)
    std::uint64_t bytes = 0; // the database's size on disk (files, or the tables and their indexes)
};

// The lower-case key a name is looked up by (ASCII letters only change).
std::string user_key(std::string_view name);
// "YYYY-MM-DD HH:MM:SS" in UTC.
std::string format_date(std::int64_t unix_seconds);

class store {
public:
    virtual ~store() = default;
    store() = default;
    store(const store&) = delete;
    store& operator=(const store&) = delete;

    // ---- users -------------------------------------------------------------
    virtual std::optional<user_record> find_user(std::string_view name) = 0;
    // False if the name (case-insensitively) is taken.
    virtual bool add_user(std::string_view name, const password_hash& pw) = 0;
    // False if there is no such user.
    virtual bool set_password(std::string_view name, const password_hash& pw) = 0;
    virtual void note_login(std::int64_t user_id, std::int64_t when) = 0;
    virtual void note_logout(std::int64_t user_id, std::int64_t when) = 0;
    virtual std::size_t user_count() = 0;

    // ---- messages ------------------------------------------------------------
    // Inserts; returns the new id. reply_to ids need not exist. The author
    // has read it.
    virtual std::int64_t post(const message_record& m) = 0;
    // Browsing, one message at a time (never the whole board in memory):
    // the oldest message `user_id` has not read with an id above `after`,
    // and the oldest one already read above `after`. Index lookups.
    virtual std::optional<std::int64_t> next_unread(std::int64_t user_id, std::int64_t after) = 0;
    virtual std::optional<std::int64_t> next_read(std::int64_t user_id, std::int64_t after) = 0;
    virtual std::size_t unread_count(std::int64_t user_id) = 0;
    virtual std::size_t read_count(std::int64_t user_id) = 0;
    // The message, marked read by `user_id` (nullopt if it is gone).
    virtual std::optional<message_record> read(std::int64_t user_id, std::int64_t message_id) = 0;
    // Only the author may delete; replies to it keep their In-Reply-To.
    virtual delete_result remove(std::int64_t user_id, std::int64_t message_id) = 0;
    virtual std::size_t message_count() = 0;
    virtual std::vector<message_record> all_messages() = 0; // by id (tests, tools)
    // Up to `limit` messages with ids above `after`, by id, with their
    // In-Reply-To lists: the tools page through a board of any size with it.
    virtual std::vector<message_record> messages_after(std::int64_t after, std::size_t limit) = 0;
    virtual board_stats stats() = 0;

    // ---- the whole board, for a copy to another store (bbs-db copy) ----------
    virtual void for_each_user(const std::function<void(const user_record&)>& f) = 0; // by id
    virtual void for_each_read_mark(const std::function<void(std::int64_t user_id, std::int64_t message_id)>& f) = 0;

    // ---- transactions (the service groups a batch; the importer its inserts)
    virtual void begin() = 0;
    virtual void commit() = 0;
    virtual void rollback() noexcept = 0;
    // A transaction is open (false again if the engine rolled it back by
    // itself, as SQLite does on some I/O errors).
    virtual bool in_transaction() const noexcept = 0;

    // Thread-safe: makes a running statement on the store's thread fail.
    virtual void interrupt() noexcept = 0;
    // Across a network (PostgreSQL): the store service then runs it on a
    // worker of its own and bounds the jobs waiting for it.
    virtual bool remote() const noexcept { return false; }
};

} // namespace kamaelia::bbs
