// `kamaelia policy`: the greylist as a Postfix policy server, a postgrey
// drop-in (default 127.0.0.1:10023, or --unix PATH):
//   smtpd_recipient_restrictions = ..., check_policy_service inet:127.0.0.1:10023
#include "console.hpp"
#include "daemon.hpp"
#include "greylist_runtime.hpp"

#include <kamaelia/greylist/policy.hpp>

#include <spdlog/spdlog.h>

#include <unistd.h>

#include <cctype>

namespace kd = kamaelia::daemon;
namespace gl = kamaelia::greylist;

namespace kamaelia::daemon {

std::chrono::seconds parse_duration(const std::string& text, std::int64_t unit, const std::string& what) {
    std::size_t used = 0;
    long long n = -1;
    try {
        n = std::stoll(text, &used);
    } catch (const std::exception&) {}
    std::string rest = text.substr(used);
    if (rest.size() == 1) {
        switch (std::tolower(static_cast<unsigned char>(rest[0]))) {
        case 's': unit = 1; break;
        case 'm': unit = 60; break;
        case 'h': unit = 3600; break;
        case 'd': unit = 86400; break;
        default: n = -1;
        }
    } else if (!rest.empty()) {
        n = -1;
    }
    if (n < 0)
        throw config_error(what + ": expected a number of " + (unit == 1 ? "seconds" : "days") +
                           " or one with s/m/h/d, got '" + text + "'");
    return std::chrono::seconds(n * unit);
}

} // namespace kamaelia::daemon

namespace {

struct policy_flags {
    std::optional<std::string> delay, max_age, retry_window, greylist_text, whitelist_clients, whitelist_recipients,
        unix_path, sync, pass_memory;
    std::optional<unsigned> awl, ipv4cidr, ipv6cidr;
    std::optional<std::size_t> max_rows, connection_queue;
    bool test_hooks = false; // command line only: never a config key
} pf;

struct policy_server : kamaelia::server_core {
    std::string greylist = gl::service_name;
    std::shared_ptr<gl::pass_memory> memory; // the service's recent passes
    gl::meter* meter = nullptr;
    bool test_hooks = false;
    gl::reply_style style;
    std::size_t max_line = 64 * 1024; // --max-line / max-line: the longest request, in bytes
    policy_server() {
        server_name = "policy";
        bind_address = "127.0.0.1"; // like postgrey: Postfix is local
        port = 10023;
        protocol = [this](const kamaelia::connection_info& peer) {
            return std::make_unique<gl::policy_protocol>(greylist, style, max_line, peer.name(), test_hooks, meter,
                                                         memory);
        };
    }
};

std::string host_name() {
    char buf[256] = {};
    if (gethostname(buf, sizeof buf - 1) != 0) return "localhost";
    return buf;
}

std::optional<std::string> policy_store;

void add_flags(CLI::App& app) {
    app.add_option("--delay", pf.delay, "seconds before a retry passes (default 300)");
    app.add_option("--max-age", pf.max_age, "days a passed triplet is remembered, refreshed on use (default 35)");
    app.add_option("--retry-window", pf.retry_window, "days (or Nh) in which the first retry must come (default 2)");
    app.add_option("--greylist-text", pf.greylist_text, "reply text of a defer (%s seconds left, %r recipient domain)");
    app.add_option("--auto-whitelist-clients", pf.awl,
                   "passes after which a client skips greylisting (default 5, 0: off)");
    app.add_option("--whitelist-clients", pf.whitelist_clients, "postgrey-format client whitelist file");
    app.add_option("--whitelist-recipients", pf.whitelist_recipients, "postgrey-format recipient whitelist file");
    app.add_option("--unix", pf.unix_path, "listen on this UNIX socket instead of TCP");
    app.add_option("--sync", pf.sync, "normal (survives kill -9, default) or full (also power loss)");
    app.add_option("--ipv4cidr", pf.ipv4cidr, "client network size of the triplet for IPv4 (default 24)");
    app.add_option("--ipv6cidr", pf.ipv6cidr, "client network size of the triplet for IPv6 (default 64)");
    app.add_option("--max-rows", pf.max_rows, "cap on stored triplets (default 1000000)");
    app.add_option("--pass-memory", pf.pass_memory, kd::pass_memory_help);
    app.add_option("--connection-queue", pf.connection_queue,
                   "requests a PostgreSQL store connection may hold; more get a temporary failure at once "
                   "(default 1000)");
    app.add_option("--store", policy_store,
                   "greylist store: postgresql://HOST/DB[?pool=N] (several hosts; N connections, 1-16, default 1) or a "
                   "SQLite file (default <data-dir>/greylist.sqlite)");
    app.add_flag("--test-hooks", pf.test_hooks,
                 "TESTS ONLY: honour policy_test_time in requests (sets a triplet's clock); never in production");
}

// default < config file < flag
template <class T>
std::optional<T> pick(const std::optional<T>& flag, std::optional<T> file) {
    return flag ? flag : file;
}

gl::settings greylist_settings(const kd::config_file* cf) {
    const std::string sec = "policy";
    auto str = [&](const char* k) { return cf ? cf->get(sec, k) : std::nullopt; };
    auto uint = [&](const char* k) -> std::optional<std::uint64_t> { return cf ? cf->get_uint(sec, k) : std::nullopt; };
    gl::settings s;
    if (auto v = pick(pf.delay, str("delay"))) s.delay = kd::parse_duration(*v, 1, "--delay");
    if (auto v = pick(pf.max_age, str("max-age"))) s.max_age = kd::parse_duration(*v, 86400, "--max-age");
    if (auto v = pick(pf.retry_window, str("retry-window")))
        s.retry_window = kd::parse_duration(*v, 86400, "--retry-window");
    if (pf.awl)
        s.auto_whitelist_clients = *pf.awl;
    else if (auto v = uint("auto-whitelist-clients"))
        s.auto_whitelist_clients = static_cast<unsigned>(*v);
    if (auto v = pick(pf.whitelist_clients, str("whitelist-clients"))) s.whitelist_clients_file = *v;
    if (auto v = pick(pf.whitelist_recipients, str("whitelist-recipients"))) s.whitelist_recipients_file = *v;
    if (auto v = pick(pf.sync, str("sync"))) {
        if (*v != "normal" && *v != "full") throw kd::config_error("--sync: expected normal or full, got '" + *v + "'");
        s.sync_full = *v == "full";
    }
    if (pf.ipv4cidr)
        s.ipv4_prefix = *pf.ipv4cidr;
    else if (auto v = uint("ipv4cidr"))
        s.ipv4_prefix = static_cast<unsigned>(*v);
    if (pf.ipv6cidr)
        s.ipv6_prefix = *pf.ipv6cidr;
    else if (auto v = uint("ipv6cidr"))
        s.ipv6_prefix = static_cast<unsigned>(*v);
    if (s.ipv4_prefix > 32 || s.ipv6_prefix > 128) throw kd::config_error("--ipv4cidr/--ipv6cidr out of range");
    if (pf.max_rows)
        s.max_rows = *pf.max_rows;
    else if (auto v = uint("max-rows"))
        s.max_rows = *v;
    s.connection_queue = kd::connection_queue(pf.connection_queue, cf, sec);
    s.pass_memory_ttl = kd::pass_memory_ttl(pf.pass_memory, cf, sec);
    return s;
}

void build(kd::runtime& rt, const kd::server_flags& f) {
    auto s = std::make_unique<policy_server>();
    kd::configure(*s, "policy", f, rt.config());
    const kd::config_file* cf = rt.config();
    if (auto v = pick(pf.greylist_text, cf ? cf->get("policy", "greylist-text") : std::nullopt))
        s->style.greylist_text = *v;
    s->style.host = host_name();
    s->style.version = "kamaelia-" KAMAELIA_VERSION;
    gl::settings gs = greylist_settings(cf);
    gs.database = kd::greylist_store(rt, policy_store, "policy");
    s->greylist = kd::shared_greylist(rt, gs, "policy");
    s->memory = kd::shared_greylist_memory(rt);
    s->meter = kamaelia::console::greylist_counters_of(rt).get(); // kept alive by the runtime
    s->test_hooks = pf.test_hooks;
    if (pf.test_hooks)
        spdlog::warn("policy: --test-hooks is ON: any client of this port can set the greylist's clock with "
                     "policy_test_time. This is for tests and benchmarks only; never run it in production.");
    auto unix_path = pick(pf.unix_path, cf ? cf->get("policy", "unix") : std::nullopt);
    if (unix_path) s->unix_path = *unix_path; // instead of TCP, with the same caps and timeouts
    rt.add_server(std::move(s));
}

const kd::register_server reg{{
    .name = "policy",
    .help = "greylisting Postfix policy server, a postgrey drop-in (default 127.0.0.1:10023)",
    .order = 50,
    .keys = {"delay", "max-age", "retry-window", "greylist-text", "auto-whitelist-clients", "whitelist-clients",
             "whitelist-recipients", "unix", "sync", "ipv4cidr", "ipv6cidr", "max-rows", "store", "connection-queue",
             "pass-memory"},
    .add_flags = add_flags,
    .build = build,
}};

} // namespace
