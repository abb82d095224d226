// `kamaelia bbs-db copy --to postgresql://... [--data-dir DIR | --store FROM]`:
// moves a board (<data-dir>/bbs.sqlite, or the store --store names) into a
// PostgreSQL database -- the upgrade path from one board host to several.
// Users, messages, replies and read marks keep their ids; rows already in
// the destination are left alone, so a copy run twice gives one board.
// Best run with the board stopped: posts made meanwhile are not copied.
#include "daemon.hpp"
#include "store_choice.hpp"

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

int bbs_db() {
    if (!kamaelia::pg::is_url(copy_to)) {
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
        bbs::pg_store::options o;
        o.conninfo = copy_to;
        bbs::pg_store to(o);
        // One transaction: the destination has the whole board or none of it.
        std::size_t users = 0, messages = 0, marks = 0;
        to.begin();
        src->for_each_user([&](const bbs::user_record& u) {
            to.restore_user(u);
            ++users;
        });
        for (const auto& m : src->all_messages()) {
            to.restore_message(m);
            ++messages;
        }
        src->for_each_read_mark([&](std::int64_t u, std::int64_t m) {
            to.restore_read_mark(u, m);
            ++marks;
        });
        to.finish_restore();
        to.commit();
        std::cout << "copied " << users << " users, " << messages << " messages and " << marks << " read marks to "
                  << kamaelia::pg::redact(copy_to) << "\n";
    } catch (const std::exception& e) {
        std::cerr << "kamaelia bbs-db: " << e.what() << "\n";
        return 1;
    }
    return 0;
}

const kd::register_tool reg{{
    .name = "bbs-db",
    .help = "board database: copy --to postgresql://HOST/DB (from --data-dir DIR or --store)",
    .setup =
        [](CLI::App& app) {
            app.add_option("command", command, "copy")->required()->check(CLI::IsMember({"copy"}));
            app.add_option("--data-dir", data_dir, "where bbs.sqlite is (default $KAMAELIA_DATA_DIR, else ./var)");
            app.add_option("--store", store_flag, "the board to copy instead: a SQLite file or postgresql://HOST/DB");
            app.add_option("--to", copy_to,
                           "the destination: postgresql://HOST/DB (password: URL, PGPASSWORD or PGPASSFILE)")
                ->required();
        },
    .run = bbs_db,
}};

} // namespace
