// The board's store in SQLite: one file, WAL journal, synchronous=FULL, so
// a call that returned (or a COMMIT) has been fsynced and an acknowledged
// post survives kill -9 and a power cut. Every statement is prepared once
// with bound parameters.
#pragma once

#include <kamaelia/bbs/store.hpp>
#include <kamaelia/sqlite/database.hpp>

#include <memory>
#include <string>
#include <vector>

namespace kamaelia::bbs {

class sqlite_store final : public store {
public:
    // Opens or creates the database (":memory:" for tests). Throws store_error.
    explicit sqlite_store(const std::string& path);
    ~sqlite_store() override;

    const std::string& path() const noexcept { return path_; }

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

    void begin() override;
    void commit() override;
    void rollback() noexcept override;
    bool in_transaction() const noexcept override;
    void interrupt() noexcept override;

private:
    sqlite::statement& stmt(int which);
    std::vector<std::int64_t> replies_of(std::int64_t id);

    std::string path_;
    sqlite::database db_;
    std::vector<std::unique_ptr<sqlite::statement>> stmts_; // after db_: finalized before it closes
};

} // namespace kamaelia::bbs
