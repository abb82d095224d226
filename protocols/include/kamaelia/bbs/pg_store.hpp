// The board's store in PostgreSQL: several board hosts on one database (a
// user registered on host A logs in on host B, a post made on A is read on
// B). Prepared statements only; the schema (tables bbs_*) versioned as part
// "bbs" of kamaelia_schema and migrated at open under an advisory lock; a
// newer schema than this kamaelia knows refuses to start.
//
// Same contract as sqlite_store: the store service calls it from one
// thread and answers only after commit() returned. A server that is down,
// restarting, read-only or full makes the call throw store_error (the
// session says "try again later"); a statement that fails aborts the whole
// transaction in PostgreSQL, so in_transaction() turns false and the batch
// is answered with errors, never with a success. The next begin()
// reconnects, so a restarted server is used again without restarting the
// daemon.
//
// Text is stored as bytea: the board keeps the bytes users sent (Latin-1
// included), which a UTF-8 text column would refuse.
#pragma once

#include <kamaelia/bbs/store.hpp>
#include <kamaelia/pg/database.hpp>

#include <chrono>
#include <string>

namespace kamaelia::bbs {

class pg_store final : public store {
public:
    static constexpr int schema_version = 1;

    // conninfo: postgresql://[USER[:PASS]@]HOST[:PORT]/DB or keyword/value;
    // the label and application name are the board's whatever they say.
    using options = pg::database::options;

    // Connects and creates or migrates the schema. store_error if the server
    // cannot be reached, refuses us, or holds a newer schema.
    explicit pg_store(const options& o);
    ~pg_store() override;

    // "host:port/dbname" (no password).
    const std::string& name() const noexcept { return db_.name(); }
    std::uint64_t reconnects() const noexcept { return db_.reconnects(); }

    std::optional<user_record> find_user(std::string_view name) override;
    bool add_user(std::string_view name, const password_hash& pw) override;
    bool set_password(std::string_view name, const password_hash& pw) override;
    void note_login(std::int64_t user_id, std::int64_t when) override;
    void note_logout(std::int64_t user_id, std::int64_t when) override;
    std::size_t user_count() override;

    std::int64_t post(const message_record& m) override;
    std::optional<std::int64_t> next_unread(std::int64_t user_id, std::int64_t after) override;
    std::optional<std::int64_t> next_read(std::int64_t user_id, std::int64_t after) override;
    std::size_t unread_count(std::int64_t user_id) override;
    std::size_t read_count(std::int64_t user_id) override;
    std::optional<message_record> read(std::int64_t user_id, std::int64_t message_id) override;
    delete_result remove(std::int64_t user_id, std::int64_t message_id) override;
    std::size_t message_count() override;
    std::vector<message_record> all_messages() override;
    std::vector<message_record> messages_after(std::int64_t after, std::size_t limit) override;
    board_stats stats() override;
    void for_each_user(const std::function<void(const user_record&)>& f) override;
    void for_each_read_mark(const std::function<void(std::int64_t, std::int64_t)>& f) override;

    // ---- a copy from another store (bbs-db copy): rows as they are, ids kept.
    // Rows already there are left alone, so a copy run twice gives one board.
    void restore_user(const user_record& u);
    void restore_message(const message_record& m);
    void restore_read_mark(std::int64_t user_id, std::int64_t message_id);
    // After the restores: new users and posts get ids above the copied ones.
    void finish_restore();

    void begin() override;
    void commit() override;
    void rollback() noexcept override;
    bool in_transaction() const noexcept override;
    // A running statement is bounded by statement_timeout instead: a cancel
    // from another thread would race the reconnect that replaces the session.
    void interrupt() noexcept override {}
    bool remote() const noexcept override { return true; }

private:
    std::vector<std::int64_t> replies_of(std::int64_t id);
    // Runs `f` in a transaction of its own unless one is open (the tools
    // call the store outside one): a post and its replies land together.
    template <class F>
    auto atomically(F&& f);

    pg::database db_;
};

} // namespace kamaelia::bbs
