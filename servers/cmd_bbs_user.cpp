// `kamaelia bbs-user add NAME [--data-dir DIR | --store URL]`: adds a bulletin-board user,
// the password read from stdin (one line), hashed with PBKDF2-SHA256.
// `passwd` sets a new password for an existing user the same way.
#include "daemon.hpp"
#include "store_choice.hpp"

#include <kamaelia/bbs/open_store.hpp>
#include <kamaelia/bbs/password.hpp>

#include <filesystem>
#include <iostream>
#include <optional>
#include <string>

namespace kd = kamaelia::daemon;
namespace bbs = kamaelia::bbs;

namespace {

std::string action;
std::string name;
std::string data_dir = kd::default_data_dir(); // KAMAELIA_DATA_DIR, else ./var
std::optional<std::string> store_flag;
std::uint32_t iterations = bbs::default_kdf_iterations;

// Names are typed at a telnet prompt and shown to others: printable ASCII
// without spaces keeps them unambiguous.
bool valid_name(const std::string& n) {
    if (n.empty() || n.size() > 32) return false;
    for (char c : n)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-'))
            return false;
    return true;
}

int run() {
    if (!valid_name(name)) {
        std::cerr << "kamaelia bbs-user: a name is 1 to 32 letters, digits, '.', '_' or '-'\n";
        return 2;
    }
    std::string password;
    if (!std::getline(std::cin, password)) {
        std::cerr << "kamaelia bbs-user: expected the password on stdin\n";
        return 2;
    }
    if (!password.empty() && password.back() == '\r') password.pop_back();
    if (password.empty()) {
        std::cerr << "kamaelia bbs-user: the password is empty\n";
        return 2;
    }
    if (iterations == 0) {
        std::cerr << "kamaelia bbs-user: --kdf-iterations must be at least 1\n";
        return 2;
    }
    try {
        auto stp = bbs::open_store(kd::tool_store(store_flag, data_dir, "bbs.sqlite"));
        bbs::store& db = *stp;
        bbs::password_hash h = bbs::hash_password(password, iterations);
        if (action == "add") {
            if (!db.add_user(name, h)) {
                std::cerr << "kamaelia bbs-user: user '" << name << "' exists already\n";
                return 1;
            }
            std::cout << "added user " << name << "\n";
        } else {
            if (!db.set_password(name, h)) {
                std::cerr << "kamaelia bbs-user: no user '" << name << "'\n";
                return 1;
            }
            std::cout << "new password set for " << name << "\n";
        }
    } catch (const std::exception& e) {
        std::cerr << "kamaelia bbs-user: " << e.what() << "\n";
        return 1;
    }
    return 0;
}

const kd::register_tool reg{{
    .name = "bbs-user",
    .help = "adds a bulletin-board user (add NAME) or sets a password (passwd NAME); password on stdin",
    .setup =
        [](CLI::App& app) {
            app.add_option("action", action, "add | passwd")->required()->check(CLI::IsMember({"add", "passwd"}));
            app.add_option("name", name, "the user's name")->required();
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
