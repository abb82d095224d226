// `kamaelia chat`: telnet chat over a backplane (default port 1700), on one
// host or, with --backplane redis://..., on several hosts through Redis.
#include "builtin_servers.hpp"
#include "daemon.hpp"

#include <kamaelia/chassis/backplane.hpp>
#include <kamaelia/redis/bridge.hpp>

#include <spdlog/spdlog.h>

namespace kd = kamaelia::daemon;

namespace {
std::optional<std::string> backplane_url;
std::optional<std::size_t> backplane_pending;
std::optional<std::size_t> backplane_pack;

// What may wait for Redis's answers, in bytes (redis_bridge::options::
// max_pending_bytes): the flag, else the `backplane-pending-bytes` key.
std::size_t pending_bytes(kd::runtime& rt, const std::string& section) {
    std::optional<std::size_t> n = backplane_pending;
    if (!n && rt.config())
        if (auto v = rt.config()->get_uint(section, "backplane-pending-bytes")) n = static_cast<std::size_t>(*v);
    if (!n) return kamaelia::redis_bridge::default_max_pending_bytes;
    constexpr std::size_t lo = 64 << 10, hi = std::size_t(1) << 30;
    if (*n < lo || *n > hi)
        throw kd::config_error(section + ": backplane-pending-bytes must be " + std::to_string(lo) + ".." +
                               std::to_string(hi) + ", got " + std::to_string(*n));
    return *n;
}

// Bytes of local messages packed into one PUBLISH (redis_bridge::options::
// pack_bytes): the flag, else the `backplane-pack-bytes` key; 0 turns packs
// off (for a channel shared with bridges from before packs).
std::size_t pack_bytes(kd::runtime& rt, const std::string& section) {
    std::optional<std::size_t> n = backplane_pack;
    if (!n && rt.config())
        if (auto v = rt.config()->get_uint(section, "backplane-pack-bytes")) n = static_cast<std::size_t>(*v);
    if (!n) return kamaelia::redis_bridge::options{}.pack_bytes;
    constexpr std::size_t lo = 1 << 10, hi = 1 << 20;
    if (*n != 0 && (*n < lo || *n > hi))
        throw kd::config_error(section + ": backplane-pack-bytes must be 0 (off) or " + std::to_string(lo) + ".." +
                               std::to_string(hi) + ", got " + std::to_string(*n));
    return *n;
}

// A backplane-based server's `--backplane` / `backplane` key: bridges the
// backplane `name` to Redis when a URL is given.
void bridge_backplane(kd::runtime& rt, const std::string& section, const std::string& name) {
    std::optional<std::string> where = backplane_url;
    if (!where && rt.config()) where = rt.config()->get(section, "backplane");
    if (!where || where->empty() || *where == "local") return;
    kamaelia::redis::url u;
    try {
        u = kamaelia::redis::parse_url(*where);
        kamaelia::redis::resolve_password(u);
    } catch (const kamaelia::redis::url_error& e) {
        throw kd::config_error(section + ": backplane: " + e.what());
    }
    if (u.password.empty() && where->find('@') != std::string::npos)
        throw kd::config_error(section + ": backplane: empty password in the URL");
    spdlog::info("{}: backplane {} bridged to {} channel {}", section, name, u.display(),
                 u.channel.empty() ? name : u.channel);
    kamaelia::redis_bridge::options o;
    o.max_pending_bytes = pending_bytes(rt, section);
    o.pack_bytes = pack_bytes(rt, section);
    auto bridge = std::make_unique<kamaelia::redis_bridge>(name, std::move(u), o);
    // /healthz: 503 while the bridge is not linked (Redis down, or not yet
    // reached at start); read from the bridge's flag, never a probe of ours.
    rt.add_health_check([linked = bridge->link_state(), why = section + ": backplane " + name +
                                                              " is not linked to Redis " + bridge->where().display()] {
        return linked->load(std::memory_order_relaxed) ? std::string() : why;
    });
    rt.add_service(std::move(bridge));
}

const kd::register_server reg{{
    .name = "chat",
    .help = "telnet chat: every line goes to every other client (default port 1700)",
    .order = 20,
    .keys = {"backplane", "backplane-pending-bytes", "backplane-pack-bytes"},
    .add_flags =
        [](CLI::App& app) {
            app.add_option("--backplane", backplane_url,
                           "redis://[USER:PASS@]HOST:PORT[/DB][?channel=NAME]: share the chat with other hosts "
                           "through Redis pub/sub (password better from $REDISCLI_AUTH or ?password-file=PATH)");
            app.add_option("--backplane-pending-bytes", backplane_pending,
                           "bytes of chat that may wait for Redis to answer (default 8 MiB); beyond, while Redis "
                           "does not read, lines are not forwarded (counted in /metrics)");
            app.add_option("--backplane-pack-bytes", backplane_pack,
                           "lines taken together go to Redis as one PUBLISH of up to this many bytes (default "
                           "16384; 0: one PUBLISH a line, for a channel shared with kamaelia before packs)");
        },
    .build =
        [](kd::runtime& rt, const kd::server_flags& f) {
            auto s = std::make_unique<kamaelia::servers::chat_server>();
            kd::configure(*s, "chat", f, rt.config());
            // A client that does not read is cut off once its queue is full;
            // the others never wait for it.
            rt.add_service(std::make_unique<kamaelia::backplane>(s->backplane_name, kamaelia::delivery_policy::fail));
            bridge_backplane(rt, "chat", s->backplane_name);
            rt.add_server(std::move(s));
        },
}};
} // namespace
