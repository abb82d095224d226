// Which store a server uses, the one rule for the greylist and the board:
// its own --store flag, its section's `store` key, the daemon-wide flag
// (`kamaelia all --greylist-store`, `--bbs-store`), the [kamaelia] key of
// the same name, else a SQLite file in the data directory. Each key also
// comes from the environment as KAMAELIA_<SECTION>_<KEY> (config.hpp).
#pragma once

#include "daemon.hpp"

#include <kamaelia/pg/database.hpp>

#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>

namespace kamaelia::daemon {

// `kamaelia all --bbs-store URL` (daemon-wide; set by main). The greylist's
// is greylist_runtime.hpp's greylist_store_flag.
inline std::optional<std::string> bbs_store_flag;

struct store_rule {
    const std::optional<std::string>& daemon_flag; // e.g. --greylist-store
    const char* daemon_key;                        // e.g. "greylist-store" in [kamaelia]
    const char* default_file;                      // e.g. "greylist.sqlite" in the data directory
};

// A PostgreSQL URL's pool size (`?pool=N`, 1 to pg::max_pool_size) is
// checked here, so a bad one is a configuration error (exit 2) at start-up.
inline std::string checked_store(const std::string& section, std::string where) {
    if (pg::is_url(where)) try {
            (void)pg::split_pool(where);
        } catch (const std::invalid_argument& e) {
            throw config_error(section + ": store " + pg::redact(where) + ": " + e.what());
        }
    return where;
}

inline std::string chosen_store(runtime& rt, const std::optional<std::string>& flag, const std::string& section,
                                const store_rule& rule) {
    const config_file* cf = rt.config();
    if (flag) return checked_store(section, *flag);
    if (cf)
        if (auto v = cf->get(section, "store")) return checked_store(section, *v);
    if (rule.daemon_flag) return checked_store(section, *rule.daemon_flag);
    if (cf)
        if (auto v = cf->get("kamaelia", rule.daemon_key)) return checked_store(section, *v);
    return (std::filesystem::path(rt.data_dir()) / rule.default_file).string();
}

// The same for a tool (bbs-user, bbs-import, bbs-db): its --store, else
// `file` in its --data-dir, which is made if missing.
inline std::string tool_store(const std::optional<std::string>& flag, const std::string& data_dir, const char* file) {
    if (flag) return *flag;
    std::filesystem::create_directories(data_dir);
    return (std::filesystem::path(data_dir) / file).string();
}

} // namespace kamaelia::daemon
