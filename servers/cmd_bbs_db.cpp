// `kamaelia bbs-db stats|export|copy [--data-dir DIR | --store STORE]`:
// looks after a board's database, SQLite (<data-dir>/bbs.sqlite) or
// PostgreSQL (--store postgresql://...).
// - stats: how many users, messages, replies and read marks, and its size;
// - export: the messages as JSON Lines on stdout (bbs/export.hpp);
// - copy --to postgresql://...: moves a board into a PostgreSQL database --
//   the upgrade path from one board host to several. Users, messages,
//   replies and read marks keep their ids; rows already in the destination
//   are left alone, so a copy run twice gives one board. Best run with the
//   board stopped: posts made meanwhile are not copied.
// export and copy read the messages 500 at a time, never the whole board.
#include "daemon.hpp"
#include "store_choice.hpp"

#include <kamaelia/bbs/export.hpp>
#include <kamaelia/bbs/open_store.hpp>
#include <kamaelia/bbs/pg_store.hpp>

#include <filesystem>
#include <iostream>
#include <optional>
#include <string>

namespace kd = kamaelia::daemon;
namespace bbs = kamaelia::bbs;

namespace {

std::string command;
std::string data_dir = kd::default_data_dir(); // KAMAELIA_DATA_DIR, else ./var
std::optional<std::string> store_flag;
std::string copy_to;

constexpr std::size_t page = 500;

int copy(bbs::store& src) {
    bbs::pg_store::options o;
    o.conninfo = copy_to;
    bbs::pg_store to(o);
    // One transaction: the destination has the whole board or none of it.
    std::size_t users = 0, marks = 0;
    to.begin();
    src.for_each_user([&](const bbs::user_record& u) {
        to.restore_user(u);
        ++users;
    });
    std::size_t messages = bbs::for_each_message(
        src, [&](const bbs::message_record& m) { to.restore_message(m); }, page);
    src.for_each_read_mark([&](std::int64_t u, std::int64_t m) {
        to.restore_read_mark(u, m);
        ++marks;
    });
    to.finish_restore();
    to.commit();
    std::cout << "copied " << users << " users, " << messages << " messages and " << marks << " read marks to "
              << kamaelia::pg::redact(copy_to) << "\n";
    return 0;
}

void stats(bbs::store& db, const std::string& from) {
    auto s = db.stats();
    std::cout << "database            " << kamaelia::pg::redact(from) << "\n";
    if (s.schema_version) std::cout << "schema version      " << s.schema_version << "\n";
    std::cout << "users               " << s.users << "\n"
              << "messages            " << s.messages << "\n"
              << "  ids               " << s.first_id << ".." << s.last_id << "\n"
              << "replies             " << s.replies << "\n"
              << "read marks          " << s.read_marks << "\n"
              << "bytes               " << s.bytes << "\n";
}

int bbs_db() {
    if (command == "copy" && !kamaelia::pg::is_url(copy_to)) {
        std::cerr << "kamaelia bbs-db: copy needs --to postgresql://HOST/DB\n";
        return 2;
    }
    std::string from = store_flag ? *store_flag : (std::filesystem::path(data_dir) / "bbs.sqlite").string();
    if (!kamaelia::pg::is_url(from) && !std::filesystem::exists(from)) {
        std::cerr << "kamaelia bbs-db: no board database at " << from << "\n";
        return 1;
    }
    try {
        auto src = bbs::open_store(from);
        if (command == "copy") return copy(*src);
        if (command == "stats") {
            stats(*src, from);
        } else {
            bbs::export_messages(*src, std::cout, page);
            std::cout.flush();
            if (!std::cout) {
                std::cerr << "kamaelia bbs-db: export: cannot write to the output\n";
                return 1;
            }
        }
    } catch (const std::exception& e) {
        std::cerr << "kamaelia bbs-db: " << e.what() << "\n";
        return 1;
    }
    return 0;
}

const kd::register_tool reg{{
    .name = "bbs-db",
    .help = "board database: stats, export (JSON Lines) or copy --to postgresql://HOST/DB (--data-dir DIR or --store)",
    .setup =
        [](CLI::App& app) {
            app.add_option("command", command, "stats, export or copy")
                ->required()
                ->check(CLI::IsMember({"stats", "export", "copy"}));
            app.add_option("--data-dir", data_dir, "where bbs.sqlite is (default $KAMAELIA_DATA_DIR, else ./var)");
            app.add_option("--store", store_flag, "the board instead: a SQLite file or postgresql://HOST/DB");
            app.add_option("--to", copy_to,
                           "copy: the destination, postgresql://HOST/DB (password: URL, PGPASSWORD or PGPASSFILE)");
        },
    .run = bbs_db,
}};

} // namespace
