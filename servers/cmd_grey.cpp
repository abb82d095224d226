// `kamaelia grey`: the greylisting SMTP proxy in front of a real MTA
// (default port 2525, upstream 127.0.0.1:8025). The greylist engine is
// shared with `policy` under `kamaelia all` (<data-dir>/greylist.sqlite).
//
// Config: a [grey] section in the daemon's file, or Kamaelia Grey's own
// greylist.conf given to --config (a file without [sections]; see
// kamaelia/smtp/greylist_conf.hpp), translated here into [grey] keys with
// the original line numbers.
#include "console.hpp"
#include "daemon.hpp"
#include "greylist_runtime.hpp"

#include <kamaelia/greylist/settings.hpp>
#include <kamaelia/net/host_name.hpp>
#include <kamaelia/smtp/command.hpp>
#include <kamaelia/smtp/greylist_conf.hpp>
#include <kamaelia/smtp/network.hpp>
#include <kamaelia/smtp/protocol.hpp>
#include <kamaelia/smtp/proxy.hpp>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <atomic>
#include <memory>
#include <sstream>

namespace kd = kamaelia::daemon;
namespace ks = kamaelia::smtp;

namespace {

struct grey_flags {
    std::optional<std::string> upstream;
    std::optional<std::string> delay;
    std::vector<std::string> allowed_domains;
    std::vector<std::string> allowed_senders;
    std::vector<std::string> allowed_sender_nets;
    std::optional<std::uint64_t> max_message_size;
    std::optional<std::size_t> max_recipients;
    std::optional<std::size_t> max_rcpt_attempts;
    std::optional<unsigned> max_errors;
    std::optional<std::string> servername;
    std::optional<std::string> session_log;
    std::optional<double> upstream_backoff;
    std::optional<double> upstream_timeout;
    std::optional<double> upstream_data_timeout;
    std::optional<std::string> x_greylist_header;
    std::optional<std::string> store;
    std::optional<std::size_t> connection_queue;
    std::optional<std::string> pass_memory;
};
grey_flags gf;

const std::set<std::string> grey_keys = {"upstream",
                                         "delay",
                                         "pass-memory",
                                         "allowed-domain",
                                         "allowed-sender",
                                         "allowed-sender-net",
                                         "max-message-size",
                                         "max-recipients",
                                         "max-rcpt-attempts",
                                         "max-errors",
                                         "servername",
                                         "serverid",
                                         "session-log",
                                         "debug-log",
                                         "tls-cert",
                                         "tls-key",
                                         "upstream-backoff",
                                         "upstream-timeout",
                                         "upstream-data-timeout",
                                         "x-greylist-header",
                                         "whitelisted-triple",
                                         "whitelisted-nonstandard-triple",
                                         "store",
                                         "connection-queue"};

std::vector<std::string> split_list(const std::string& s) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ',')) {
        auto b = item.find_first_not_of(" \t");
        if (b == std::string::npos) continue;
        out.push_back(item.substr(b, item.find_last_not_of(" \t") - b + 1));
    }
    return out;
}

std::vector<std::string> words(const std::string& s) {
    std::vector<std::string> w;
    std::istringstream in(s);
    std::string x;
    while (in >> x) w.push_back(x);
    return w;
}

// greylist.conf -> [grey] values, validating list items at their own lines.
std::optional<kd::config_values> translate(const std::string& text, const std::string& path) {
    if (!ks::looks_like_greylist_conf(text)) return std::nullopt;
    ks::greylist_conf c;
    try {
        c = ks::parse_greylist_conf(text, path);
    } catch (const ks::greylist_conf_error& e) {
        throw kd::config_error(e.what());
    }
    kd::config_values v;
    auto& g = v["grey"];
    auto where = [&](int line) { return path + ":" + std::to_string(line); };
    static const std::map<std::string, std::string> scalar = {{"port", "port"},
                                                              {"servername", "servername"},
                                                              {"serverid", "serverid"},
                                                              {"inactivity_timeout", "idle-timeout"},
                                                              {"greylist_log", "session-log"},
                                                              {"greylist_debuglog", "debug-log"}};
    for (const auto& [k, item] : c.scalars)
        if (auto m = scalar.find(k); m != scalar.end()) g[m->second] = {item.value, item.line};
    if (c.scalars.count("smtp_ip") || c.scalars.count("smtp_port")) {
        const ks::conf_item* ip = c.scalars.count("smtp_ip") ? &c.scalars.at("smtp_ip") : nullptr;
        const ks::conf_item* port = c.scalars.count("smtp_port") ? &c.scalars.at("smtp_port") : nullptr;
        std::string host = ip ? ip->value : "127.0.0.1";
        if (host.find(':') != std::string::npos) host = "[" + host + "]";
        g["upstream"] = {host + ":" + (port ? port->value : "8025"), (port ? port : ip)->line};
    }
    static const std::map<std::string, std::string> lists = {
        {"allowed_senders", "allowed-sender"},
        {"allowed_sender_nets", "allowed-sender-net"},
        {"allowed_domains", "allowed-domain"},
        {"whitelisted_triples", "whitelisted-triple"},
        {"whitelisted_nonstandard_triples", "whitelisted-nonstandard-triple"}};
    for (const auto& [k, items] : c.lists) {
        std::string joined;
        for (const auto& it : items) {
            if (k == "allowed_sender_nets" && !ks::network::parse(it.value))
                throw kd::config_error(where(it.line) +
                                       ": not a network (CIDR, address or dotted prefix): " + it.value);
            if (k.find("triples") != std::string::npos && words(it.value).size() != 3)
                throw kd::config_error(where(it.line) + ": a triple has three fields separated by spaces: " + it.value);
            if (it.value.find(',') != std::string::npos)
                throw kd::config_error(where(it.line) + ": ',' is not allowed in an item: " + it.value);
            if (!joined.empty()) joined += ",";
            joined += it.value;
        }
        if (!items.empty()) g[lists.at(k)] = {joined, items.front().line};
    }
    return v;
}

const bool translator_registered = [] {
    kd::config_translators().push_back(translate);
    return true;
}();

// "host:port", "[v6]:port" or "host" (port 8025).
std::pair<std::string, std::uint16_t> parse_upstream(const std::string& s) {
    std::string host = s, port = "8025";
    if (!s.empty() && s[0] == '[') {
        auto close = s.find(']');
        if (close == std::string::npos) throw kd::config_error("grey: bad upstream '" + s + "'");
        host = s.substr(1, close - 1);
        if (close + 1 < s.size()) {
            if (s[close + 1] != ':') throw kd::config_error("grey: bad upstream '" + s + "'");
            port = s.substr(close + 2);
        }
    } else if (auto c = s.rfind(':'); c != std::string::npos && s.find(':') == c) {
        host = s.substr(0, c);
        port = s.substr(c + 1);
    }
    char* end = nullptr;
    unsigned long p = std::strtoul(port.c_str(), &end, 10);
    if (host.empty() || port.empty() || *end || p == 0 || p > 65535)
        throw kd::config_error("grey: upstream must be HOST:PORT, got '" + s + "'");
    return {host, static_cast<std::uint16_t>(p)};
}

struct grey_server : kamaelia::server_core {
    std::shared_ptr<ks::proxy_context> ctx = std::make_shared<ks::proxy_context>();
    std::size_t max_line = 512; // --max-line: the command line limit (RFC 5321: 512 with CRLF)
    grey_server() {
        server_name = "grey";
        port = 2525;
        grace = std::chrono::seconds(60); // a message in flight may take a while to reach the upstream
        protocol = [c = ctx](const kamaelia::connection_info& ci) { return ks::protocol(c, ci); };
    }
};

void build(kd::runtime& rt, const kd::server_flags& f) {
    auto s = std::make_unique<grey_server>();
    kd::configure(*s, "grey", f, rt.config());
    const kd::config_file* cf = rt.config();
    auto file = [&](const char* key) -> std::optional<std::string> { return cf ? cf->get("grey", key) : std::nullopt; };
    auto& cfg = s->ctx->cfg;
    if (s->max_line < 512) throw kd::config_error("grey: max-line must be at least 512 (RFC 5321)");
    cfg.max_command_line = s->max_line;
    // The session keeps its own idle timer (it says 421 4.4.2) and its
    // upstream timers (451 4.4.1); the server's sweep is only a backstop,
    // set past the longest of them so a client waiting on us is not cut.
    if (s->inactivity_timeout) cfg.idle_timeout = *s->inactivity_timeout;
    auto seconds_of = [&](std::optional<double> flag, const char* key) -> std::optional<kamaelia::duration> {
        if (!flag && cf) flag = cf->get_seconds("grey", key);
        if (!flag) return std::nullopt;
        if (!(*flag >= 1 && *flag <= 86400))
            throw kd::config_error(std::string("grey: ") + key + " must be 1 to 86400 seconds");
        return std::chrono::duration_cast<kamaelia::duration>(std::chrono::duration<double>(*flag));
    };
    if (auto t = seconds_of(gf.upstream_timeout, "upstream-timeout")) cfg.upstream_timeout = *t;
    if (auto t = seconds_of(gf.upstream_data_timeout, "upstream-data-timeout")) cfg.upstream_reply_timeout = *t;
    s->inactivity_timeout = cfg.longest_wait() + std::chrono::seconds(30);
    // A message in DATA at a stop gets the grace less a margin, then 421 4.3.2
    // (the server forces what is left when the whole grace is over).
    s->ctx->server_grace = [srv = s.get()] { return srv->grace; };

    cfg.server_name = gf.servername.value_or(file("servername").value_or(kamaelia::host_name()));
    if (auto v = file("serverid")) cfg.server_id = *v;
    auto up = parse_upstream(gf.upstream.value_or(file("upstream").value_or("127.0.0.1:8025")));
    cfg.upstream_host = up.first;
    cfg.upstream_port = up.second;

    auto list = [&](const std::vector<std::string>& flag, const char* key) {
        if (!flag.empty()) return flag;
        auto v = file(key);
        return v ? split_list(*v) : std::vector<std::string>{};
    };
    for (auto& d : list(gf.allowed_domains, "allowed-domain")) cfg.allowed_domains.push_back(ks::lower(d));
    cfg.allowed_senders = list(gf.allowed_senders, "allowed-sender");
    for (auto& n : list(gf.allowed_sender_nets, "allowed-sender-net")) {
        auto net = ks::network::parse(n);
        if (!net)
            throw kd::config_error("grey: allowed-sender-net: not a network (CIDR, address or dotted prefix): " + n);
        cfg.allowed_sender_nets.push_back(*net);
    }
    for (auto& t : list({}, "whitelisted-triple")) {
        auto w = words(t);
        if (w.size() != 3) throw kd::config_error("grey: whitelisted-triple needs 'IP <sender> <recipient>': " + t);
        cfg.whitelisted_triples.push_back({w[0], w[1], w[2]});
    }
    for (auto& t : list({}, "whitelisted-nonstandard-triple")) {
        auto w = words(t);
        auto net = w.size() == 3 ? ks::network::parse(w[1]) : std::nullopt;
        if (!net)
            throw kd::config_error("grey: whitelisted-nonstandard-triple needs 'HELO IP-prefix <recipient>': " + t);
        cfg.whitelisted_nonstandard_triples.push_back({w[0], *net, w[2]});
    }
    if (gf.max_message_size)
        cfg.max_message_size = *gf.max_message_size;
    else if (cf)
        if (auto v = cf->get_uint("grey", "max-message-size")) cfg.max_message_size = *v;
    if (gf.max_recipients)
        cfg.max_recipients = *gf.max_recipients;
    else if (cf)
        if (auto v = cf->get_uint("grey", "max-recipients")) cfg.max_recipients = *v;
    if (cfg.max_recipients == 0) throw kd::config_error("grey: max-recipients must be at least 1");
    if (gf.max_rcpt_attempts)
        cfg.max_rcpt_attempts = *gf.max_rcpt_attempts;
    else if (cf)
        if (auto v = cf->get_uint("grey", "max-rcpt-attempts")) cfg.max_rcpt_attempts = *v;
    if (cfg.max_rcpt_attempts == 0) throw kd::config_error("grey: max-rcpt-attempts must be at least 1");
    if (gf.max_errors)
        cfg.max_errors = *gf.max_errors;
    else if (cf)
        if (auto v = cf->get_uint("grey", "max-errors")) cfg.max_errors = static_cast<unsigned>(*v);
    if (cfg.max_errors == 0) throw kd::config_error("grey: max-errors must be at least 1");
    std::optional<double> backoff = gf.upstream_backoff;
    if (!backoff && cf) backoff = cf->get_seconds("grey", "upstream-backoff");
    if (backoff) {
        cfg.upstream_backoff_min =
            std::chrono::duration_cast<kamaelia::duration>(std::chrono::duration<double>(*backoff));
        cfg.upstream_backoff_max = std::max(cfg.upstream_backoff_max, cfg.upstream_backoff_min);
    }
    if (auto x = gf.x_greylist_header ? gf.x_greylist_header : file("x-greylist-header")) {
        if (*x == "yes" || *x == "on" || *x == "true")
            cfg.x_greylist_header = true;
        else if (*x == "no" || *x == "off" || *x == "false")
            cfg.x_greylist_header = false;
        else
            throw kd::config_error("grey: x-greylist-header must be yes or no, got '" + *x + "'");
    }
    // --tls-cert/--tls-key (the common server flags) mean STARTTLS here:
    // connections start in clear, as on port 25, and upgrade on request.
    s->ctx->tls = std::move(s->tls);
    s->tls.reset();
    if (cfg.allowed_domains.empty())
        spdlog::warn(
            "grey: no --allowed-domain: every recipient will be refused (550 5.7.1), except for allowed senders");

    // The greylist service, shared with `policy` under `kamaelia all` (whichever asks
    // first sets its timings); it reloads its whitelist files on SIGHUP.
    kamaelia::greylist::settings gs;
    if (auto d = gf.delay ? gf.delay : file("delay")) gs.delay = kd::parse_duration(*d, 1, "grey: delay"); // 300, 5m
    try {
        gs.database = kd::greylist_store(rt, gf.store, "grey");
        gs.connection_queue = kd::connection_queue(gf.connection_queue, cf, "grey");
        gs.pass_memory_ttl = kd::pass_memory_ttl(gf.pass_memory, cf, "grey");
        s->ctx->greylist = kd::shared_greylist(rt, gs, "grey");
        s->ctx->memory = kd::shared_greylist_memory(rt);
        s->ctx->meter = kamaelia::console::greylist_counters_of(rt).get(); // kept alive by the runtime
    } catch (const kamaelia::greylist::store_error& e) {
        throw std::runtime_error(std::string("grey: ") + e.what());
    }

    // One line per transaction, to the log or to its own file (reopened on SIGHUP).
    auto session_log = gf.session_log ? gf.session_log : file("session-log");
    if (session_log) {
        auto make = [path = *session_log] {
            spdlog::drop("grey-sessions");
            auto l = spdlog::basic_logger_mt("grey-sessions", path);
            l->set_pattern("%v");
            l->flush_on(spdlog::level::info);
            return l;
        };
        // Sessions on every scheduler log while SIGHUP swaps the file on
        // scheduler 0: the logger is swapped atomically (the old one lives
        // on while a session still writes through it).
        auto logger = std::make_shared<std::atomic<std::shared_ptr<spdlog::logger>>>(make());
        s->ctx->log_line = [logger](const std::string& line) { logger->load()->info(line); };
        rt.on_reload([logger, make] { logger->store(make()); });
    } else {
        s->ctx->log_line = [](const std::string& line) { spdlog::info("grey: {}", line); };
    }
    spdlog::info("grey: upstream {}:{}, allowed domains {}, {} allowed sender network(s), greylist delay {}s",
                 cfg.upstream_host, cfg.upstream_port, cfg.allowed_domains.size(), cfg.allowed_sender_nets.size(),
                 gs.delay.count());
    rt.add_server(std::move(s));
}

const kd::register_server reg{{
    .name = "grey",
    .help = "greylisting SMTP proxy in front of a real MTA (default port 2525, upstream 127.0.0.1:8025)",
    .order = 40,
    .keys = grey_keys,
    .add_flags =
        [](CLI::App& app) {
            app.add_option("--upstream", gf.upstream, "the real MTA, HOST:PORT (default 127.0.0.1:8025)");
            app.add_option("--delay", gf.delay, "greylist delay: seconds, or with s/m/h/d (default 300)");
            app.add_option("--pass-memory", gf.pass_memory, kd::pass_memory_help);
            app.add_option("--allowed-domain", gf.allowed_domains, "recipient domain we accept mail for (repeatable)");
            app.add_option("--allowed-sender", gf.allowed_senders,
                           "client address that may relay, ungreylisted (repeatable)");
            app.add_option("--allowed-sender-net", gf.allowed_sender_nets,
                           "client network (CIDR or dotted prefix) that may relay, ungreylisted (repeatable)");
            app.add_option("--max-message-size", gf.max_message_size, "SIZE limit in bytes (default 10240000)");
            app.add_option("--max-recipients", gf.max_recipients, "recipients per message (default 100)");
            app.add_option("--max-rcpt-attempts", gf.max_rcpt_attempts,
                           "RCPT commands since the session's last delivered message, deferred and refused ones too (default 1000)");
            app.add_option("--max-errors", gf.max_errors, "errors before a session is closed with 421 (default 20)");
            app.add_option("--servername", gf.servername, "our name in replies and Received: (default: host name)");
            app.add_option("--session-log", gf.session_log, "one line per mail transaction to this file");
            app.add_option("--upstream-backoff", gf.upstream_backoff,
                           "seconds to defer at once after the upstream failed (doubling, default 1)");
            app.add_option("--upstream-timeout", gf.upstream_timeout,
                           "seconds to wait for each upstream reply before the final dot (default 300, RFC 5321)");
            app.add_option("--upstream-data-timeout", gf.upstream_data_timeout,
                           "seconds to wait for the upstream's reply to the final dot (default 600, RFC 5321)");
            app.add_option("--x-greylist-header", gf.x_greylist_header, "add X-Greylist: to delayed mail (yes/no)");
            app.add_option(
                "--store", gf.store,
                "greylist store: postgresql://HOST/DB[?pool=N] (several MX hosts; N connections, 1-16, default 1) "
                "or a SQLite file "
                "(default <data-dir>/greylist.sqlite)");
            app.add_option("--connection-queue", gf.connection_queue,
                           "requests a PostgreSQL store connection may hold; more are answered 451 at once "
                           "(default 1000)");
        },
    .build = build,
}};

} // namespace
