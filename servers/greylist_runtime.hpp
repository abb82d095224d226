// The greylist as the daemon's servers share it: one engine and one
// database (<data-dir>/greylist.sqlite) per process, whichever of `grey`
// and `policy` asks first builds it; SIGHUP reloads its whitelist files.
#pragma once

#include "daemon.hpp"
#include "greylist_meter.hpp"

#include <kamaelia/greylist/pg_store.hpp>
#include <kamaelia/greylist/settings.hpp>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

namespace kamaelia::daemon {

// Parses a duration as postgrey does: a number in `unit` seconds
// (1 for --delay, 86400 for --max-age and --retry-window), or with a
// suffix s, m, h or d ("48h"). Throws config_error.
std::chrono::seconds parse_duration(const std::string& text, std::int64_t unit, const std::string& what);

// `kamaelia all --greylist-store URL` (daemon-wide; set by main).
inline std::optional<std::string> greylist_store_flag;

// Which greylist store a server uses: its own --store flag, its section's
// `store` key, the daemon-wide --greylist-store / [kamaelia] greylist-store,
// else <data-dir>/greylist.sqlite. A postgresql:// URL names a PostgreSQL
// database (password from the URL, PGPASSWORD or PGPASSFILE).
inline std::string greylist_store(runtime& rt, const std::optional<std::string>& flag, const std::string& section) {
    const config_file* cf = rt.config();
    if (flag) return *flag;
    if (cf)
        if (auto v = cf->get(section, "store")) return *v;
    if (greylist_store_flag) return *greylist_store_flag;
    if (cf)
        if (auto v = cf->get("kamaelia", "greylist-store")) return *v;
    return (std::filesystem::path(rt.data_dir()) / "greylist.sqlite").string();
}

// One greylist per daemon: `grey` and `policy` under `kamaelia all` share
// it, so two of them naming different stores is a start-up error.
inline std::shared_ptr<greylist::engine> shared_greylist(runtime& rt, greylist::settings s,
                                                         const std::string& who = "greylist") {
    if (s.database.empty()) s.database = (std::filesystem::path(rt.data_dir()) / "greylist.sqlite").string();
    auto chosen = rt.shared<std::string>("greylist-store", [&] { return std::make_shared<std::string>(s.database); });
    if (*chosen != s.database)
        throw config_error(who + ": greylist store " + greylist::pg_store::redact(s.database) + " differs from " +
                           greylist::pg_store::redact(*chosen) +
                           ", which another server of this daemon uses (one greylist per daemon: --greylist-store)");
    return rt.shared<greylist::engine>("greylist", [&]() {
        // Counted for the console's /metrics (greylist_meter.hpp).
        std::shared_ptr<greylist::engine> e = std::make_shared<console::greylist_meter>(
            greylist::open_engine(rt.sched(), s), console::greylist_counters_of(rt)); // store_error: the daemon exits with it
        rt.on_reload([w = std::weak_ptr<greylist::engine>(e)] {
            if (auto p = w.lock()) p->reload();
        });
        return e;
    });
}

} // namespace kamaelia::daemon
