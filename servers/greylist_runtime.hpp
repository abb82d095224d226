// The greylist as the daemon's servers share it: one greylist service and
// one store per process, on scheduler 0 and asked from every scheduler
// (whichever of `grey` and `policy` asks first starts it); SIGHUP reloads
// its whitelist files. The store is <data-dir>/greylist.sqlite,
// or what --store / --greylist-store name (a postgresql:// URL: several MX hosts).
#pragma once

#include "daemon.hpp"
#include "store_choice.hpp"

#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/core/services.hpp>
#include <kamaelia/greylist/pg_store.hpp>
#include <kamaelia/greylist/service.hpp>
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

// The requests a remote store's connection may hold (--connection-queue N,
// else `connection-queue` in the server's section, else 1000): 1 to
// greylist::max_connection_queue, else a configuration error (exit 2).
inline std::size_t connection_queue(const std::optional<std::size_t>& flag, const config_file* cf,
                                    const std::string& section) {
    std::optional<std::uint64_t> n = flag;
    if (!n && cf) n = cf->get_uint(section, "connection-queue");
    if (!n) return greylist::default_connection_queue;
    if (*n == 0 || *n > greylist::max_connection_queue)
        throw config_error(section + ": connection-queue must be 1.." + std::to_string(greylist::max_connection_queue) +
                           ", got " + std::to_string(*n));
    return static_cast<std::size_t>(*n);
}

// Which greylist store a server uses: its own --store flag, its section's
// `store` key, the daemon-wide --greylist-store / [kamaelia] greylist-store,
// else <data-dir>/greylist.sqlite. A postgresql:// URL names a PostgreSQL
// database (password from the URL, PGPASSWORD or PGPASSFILE).
inline std::string greylist_store(runtime& rt, const std::optional<std::string>& flag, const std::string& section) {
    return chosen_store(rt, flag, section, {greylist_store_flag, "greylist-store", "greylist.sqlite"});
}

// Starts the greylist service once (store_error: the daemon exits with it)
// and returns the name it is registered under, for ask(). `grey` and
// `policy` under `kamaelia all` share it, so two of them naming different
// stores is a start-up error.
inline std::string shared_greylist(runtime& rt, greylist::settings s, const std::string& who = "greylist") {
    if (s.database.empty()) s.database = (std::filesystem::path(rt.data_dir()) / "greylist.sqlite").string();
    auto chosen = rt.shared<std::string>("greylist-store", [&] { return std::make_shared<std::string>(s.database); });
    if (*chosen != s.database)
        throw config_error(who + ": greylist store " + greylist::pg_store::redact(s.database) + " differs from " +
                           greylist::pg_store::redact(*chosen) +
                           ", which another server of this daemon uses (one greylist per daemon: --greylist-store)");
    auto name = rt.shared<std::string>("greylist", [&]() {
        auto svc = std::make_unique<greylist::service>(s);
        rt.shared<greylist::pass_memory>("greylist-memory", [&] { return svc->memory(); });
        // /healthz: the database thread's last finding (a batch, expiry or
        // its idle probe), read without waiting for the database.
        rt.add_health_check([h = svc->health(), db = greylist::pg_store::redact(s.database)] {
            std::string e = h->error();
            return e.empty() ? e : "greylist store " + db + " unusable: " + e;
        });
        component& c = rt.add_service(std::move(svc));                       // stopped after the servers
        register_service_in(rt.group(), greylist::service_name, c, "inbox"); // one for every scheduler
        rt.on_reload([&rt] {
            if (auto* sv = rt.sched().services().find(greylist::service_name))
                deliver(*sv->comp, "reload", message(greylist::reload_whitelists{}));
        });
        return std::make_shared<std::string>(greylist::service_name);
    });
    return *name;
}

// How long the greylist's askers may answer a known pass from its pass
// memory (--pass-memory, else `pass-memory` in the server's section, else
// 60 s): seconds or with s/m/h, 0 turns it off, at most an hour (an entry
// ends at its row's hourly refresh anyway); config_error otherwise.
inline constexpr std::chrono::seconds max_pass_memory_ttl{3600};
// --pass-memory's help, the same for grey and policy.
inline const std::string pass_memory_help =
    "seconds a known pass may be answered without the database (0: off, at most " +
    std::to_string(max_pass_memory_ttl.count()) + "; default " +
    std::to_string(greylist::settings{}.pass_memory_ttl.count()) + ")";
inline std::chrono::seconds pass_memory_ttl(const std::optional<std::string>& flag, const config_file* cf,
                                            const std::string& section) {
    std::optional<std::string> v = flag;
    if (!v && cf) v = cf->get(section, "pass-memory");
    if (!v) return greylist::settings{}.pass_memory_ttl;
    auto t = parse_duration(*v, 1, section + ": pass-memory");
    if (t.count() < 0 || t > max_pass_memory_ttl)
        throw config_error(section + ": pass-memory must be 0 (off) to " + std::to_string(max_pass_memory_ttl.count()) +
                           " seconds, got " + *v);
    return t;
}

// The started greylist's pass memory (service::memory()), for its askers:
// call after shared_greylist.
inline std::shared_ptr<greylist::pass_memory> shared_greylist_memory(runtime& rt) {
    return rt.shared<greylist::pass_memory>("greylist-memory", [] { return std::shared_ptr<greylist::pass_memory>(); });
}

} // namespace kamaelia::daemon
