// The greylist as the daemon's servers share it: one engine and one
// database (<data-dir>/greylist.sqlite) per process, whichever of `grey`
// and `policy` asks first builds it; SIGHUP reloads its whitelist files.
#pragma once

#include "daemon.hpp"
#include "greylist_meter.hpp"

#include <kamaelia/greylist/settings.hpp>

#include <filesystem>
#include <memory>

namespace kamaelia::daemon {

// Parses a duration as postgrey does: a number in `unit` seconds
// (1 for --delay, 86400 for --max-age and --retry-window), or with a
// suffix s, m, h or d ("48h"). Throws config_error.
std::chrono::seconds parse_duration(const std::string& text, std::int64_t unit, const std::string& what);

inline std::shared_ptr<greylist::engine> shared_greylist(runtime& rt, greylist::settings s) {
    return rt.shared<greylist::engine>("greylist", [&]() {
        if (s.database.empty()) s.database = (std::filesystem::path(rt.data_dir()) / "greylist.sqlite").string();
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
