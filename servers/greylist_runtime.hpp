// The greylist as the daemon's servers share it: one greylist service and
// one database (<data-dir>/greylist.sqlite) per process, whichever of `grey`
// and `policy` asks first starts it; SIGHUP reloads its whitelist files.
#pragma once

#include "daemon.hpp"

#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/core/services.hpp>
#include <kamaelia/greylist/service.hpp>
#include <kamaelia/greylist/settings.hpp>

#include <filesystem>
#include <memory>

namespace kamaelia::daemon {

// Parses a duration as postgrey does: a number in `unit` seconds
// (1 for --delay, 86400 for --max-age and --retry-window), or with a
// suffix s, m, h or d ("48h"). Throws config_error.
std::chrono::seconds parse_duration(const std::string& text, std::int64_t unit, const std::string& what);

// Starts the greylist service once (store_error: the daemon exits with it)
// and returns the name it is registered under, for ask().
inline std::string shared_greylist(runtime& rt, greylist::settings s) {
    auto name = rt.shared<std::string>("greylist", [&]() {
        if (s.database.empty()) s.database = (std::filesystem::path(rt.data_dir()) / "greylist.sqlite").string();
        auto svc = std::make_unique<greylist::service>(s);
        component& c = rt.add_service(std::move(svc)); // stopped after the servers
        rt.sched().services().register_service(greylist::service_name, c, "inbox");
        rt.on_reload([&rt] {
            if (auto* sv = rt.sched().services().find(greylist::service_name))
                sv->comp->in("reload").push_forced(message(greylist::reload_whitelists{}));
        });
        return std::make_shared<std::string>(greylist::service_name);
    });
    return *name;
}

} // namespace kamaelia::daemon
