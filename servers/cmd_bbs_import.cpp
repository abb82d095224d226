// `kamaelia bbs-import DIR --data-dir DIR`: moves the original Python
// board's data (users.passwd and messages/) into <data-dir>/bbs.sqlite (or --store URL).
#include "daemon.hpp"
#include "store_choice.hpp"

#include <kamaelia/bbs/import.hpp>
#include <kamaelia/bbs/open_store.hpp>

#include <filesystem>
#include <iostream>
#include <optional>
#include <string>

namespace kd = kamaelia::daemon;
namespace bbs = kamaelia::bbs;

namespace {

std::string source;
std::string data_dir = kd::default_data_dir(); // KAMAELIA_DATA_DIR, else ./var
std::optional<std::string> store_flag;
std::uint32_t iterations = bbs::default_kdf_iterations;

int run() {
    if (iterations == 0) {
        std::cerr << "kamaelia bbs-import: --kdf-iterations must be at least 1\n";
        return 2;
    }
    try {
        auto stp = bbs::open_store(kd::tool_store(store_flag, data_dir, "bbs.sqlite"));
        bbs::store& db = *stp;
        bbs::import_report r = bbs::import_original(source, db, iterations);
        for (const auto& w : r.warnings) std::cerr << "kamaelia bbs-import: warning: " << w << "\n";
        std::cout << "imported " << r.users_added << " user(s) (" << r.users_skipped << " skipped), "
                  << r.messages_added << " message(s)\n";
    } catch (const std::exception& e) {
        std::cerr << "kamaelia bbs-import: " << e.what() << "\n";
        return 1;
    }
    return 0;
}

const kd::register_tool reg{{
    .name = "bbs-import",
    .help = "imports the original board's users.passwd and messages/ from DIR",
    .setup =
        [](CLI::App& app) {
            app.add_option("dir", source, "the original's data directory (users.passwd, messages/)")->required();
            app.add_option("--data-dir", data_dir,
                           "the board's data directory (default $KAMAELIA_DATA_DIR, else ./var)");
            app.add_option("--store", store_flag,
                           "the board's store instead: postgresql://HOST/DB (password: URL, PGPASSWORD or PGPASSFILE) "
                           "or a SQLite file");
            app.add_option("--kdf-iterations", iterations, "PBKDF2-SHA256 iterations (default 100000)");
        },
    .run = run,
}};

} // namespace
