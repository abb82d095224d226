// The greylist in one SQLite file: WAL, prepared statements only, a
// versioned schema migrated at open, a row cap. Used from one thread.
//
// Durability: every commit is in the WAL (written with write(2)) before
// commit() returns, so a committed decision survives kill -9 of the
// process (synchronous=NORMAL); sync_full (synchronous=FULL) also fsyncs
// the WAL at each commit and survives power loss.
#pragma once

#include <kamaelia/greylist/store.hpp>
#include <kamaelia/sqlite/database.hpp>

#include <memory>
#include <string>

namespace kamaelia::greylist {

class sqlite_store final : public store {
public:
    static constexpr int schema_version = 2;

    struct options {
        std::string path;
        bool sync_full = false;
        std::size_t max_rows = 1'000'000;
        std::chrono::milliseconds busy_timeout{100};
        bool read_only = false; // grey-db stats/export: never creates nor migrates
    };

    // Opens, creates or migrates. Throws store_error naming the file when it
    // is locked, corrupt (PRAGMA quick_check), not a database, from a newer
    // version or unwritable (a start-up commit proves it takes writes).
    explicit sqlite_store(const options& o);
    ~sqlite_store() override;
    sqlite_store(const sqlite_store&) = delete;
    sqlite_store& operator=(const sqlite_store&) = delete;

    void begin() override;
    void commit() override;
    void rollback() noexcept override;
    std::optional<triplet_row> find(const triplet& k) override;
    void save(const triplet& k, const triplet_row& r, bool known) override;
    std::optional<client_row> find_client(const std::string& address) override;
    void save_client(const std::string& address, const client_row& r) override;
    std::size_t expire(std::int64_t now, const timing& t, std::size_t limit) override;
    store_stats stats(const timing& t, unsigned awl_threshold) override;
    void for_each(const std::function<void(const triplet&, const triplet_row&)>& f) override;
    void for_each_client(const std::function<void(const std::string&, const client_row&)>& f) override;

    // Rows evicted by the cap so far (oldest last-seen first).
    std::uint64_t evicted() const noexcept { return evicted_; }
    std::uint64_t rows() const noexcept { return rows_; }
    // SQLite's synchronous setting in force (1 NORMAL, 2 FULL).
    int synchronous();
    // Thread-safe: makes a long statement on the store's thread give up.
    void interrupt() noexcept override;

private:
    bool open_schema(); // WAL, migration and soundness; read-only: the version only
    void migrate();
    void count_rows();

    options opt_;
    sqlite::database db_;
    bool schema_ready_ = open_schema(); // before the statements, which need the tables
    // Declared after db_: finalized before it closes.
    sqlite::statement begin_, commit_, rollback_, find_, insert_, update_, find_client_, save_client_, expire_,
        expire_clients_, evict_, count_;
    std::uint64_t rows_ = 0;
    std::uint64_t evicted_ = 0;
    bool in_tx_ = false;
};

} // namespace kamaelia::greylist
