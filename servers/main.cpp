// kamaelia: the daemon. One executable, a sub-command per built-in server or
// tool (each registers itself from its servers/cmd_*.cpp, see daemon.hpp);
// `kamaelia all` runs every listening server in one process on one scheduler.
#include "config.hpp"
#include "console.hpp"
#include "daemon.hpp"
#include "greylist_runtime.hpp"
#include "store_choice.hpp"

#include <kamaelia/core/introspection.hpp>
#include <kamaelia/core/scheduler.hpp>

#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#ifndef KAMAELIA_VERSION
#define KAMAELIA_VERSION "0.1.0"
#endif

namespace k = kamaelia;
namespace kd = kamaelia::daemon;

namespace kamaelia::daemon {
std::vector<server_module>& server_modules() {
    static std::vector<server_module> m;
    return m;
}
std::vector<tool_module>& tool_modules() {
    static std::vector<tool_module> m;
    return m;
}
} // namespace kamaelia::daemon

namespace {

struct global_flags {
    std::string config;
    std::optional<std::string> log_level;
    std::optional<std::string> log_file;
    std::optional<std::string> data_dir;
    std::optional<std::uint16_t> introspect; // the live graph, streamed (Introspector text protocol)
    std::optional<std::string> introspect_bind;
    std::optional<double> stop_timeout;
    std::optional<std::uint16_t> console; // the live console over HTTP (graph page, /metrics, /healthz)
    std::optional<std::string> console_bind;
    std::optional<std::uint16_t> metrics_port; // /metrics and /healthz alone
};

} // namespace

namespace kamaelia::daemon {
std::map<std::string, std::set<std::string>> config_keys() {
    std::map<std::string, std::set<std::string>> keys = {
        {"kamaelia",
         {"log-level", "log-file", "data-dir", "introspect", "introspect-bind", "stop-timeout", "greylist-store",
          "bbs-store", "console", "console-bind", "metrics-port"}}};
    for (const auto& m : kd::server_modules()) {
        auto& k = keys[m.name];
        k = kd::common_server_keys();
        k.insert(m.keys.begin(), m.keys.end());
    }
    return keys;
}
} // namespace kamaelia::daemon

namespace {

using kd::config_keys;

// Docker and podman send SIGKILL 10 s after SIGTERM unless told otherwise:
// the default drain ends before that.
constexpr double default_stop_timeout = 8;

void add_server_flags(CLI::App* app, kd::server_flags& f) {
    app->add_option("--bind", f.bind, "address to listen on (0.0.0.0, ::, 127.0.0.1...)");
    app->add_option("--port", f.port, "TCP port (0 picks a free one)");
    app->add_option("--max-connections", f.max_connections, "connections beyond this are refused");
    app->add_option("--max-per-address", f.max_per_address, "connections per client address (0: no cap)");
    app->add_option("--idle-timeout", f.idle_timeout, "seconds of client silence that close a connection");
    app->add_option("--max-line", f.max_line, "longest line accepted, in bytes");
    app->add_option("--tls-cert", f.tls_cert, "PEM certificate chain: serve TLS (with --tls-key)");
    app->add_option("--tls-key", f.tls_key, "PEM private key for --tls-cert");
}

void add_global_flags(CLI::App* app, global_flags& g) {
    app->add_option("--config", g.config,
                    "config file (a section per server; default $KAMAELIA_CONFIG when that file exists)");
    app->add_option("--log-level", g.log_level, "trace, debug, info, warn, error, critical, off");
    app->add_option("--log-file", g.log_file, "log to this file instead of stderr (reopened on SIGHUP)");
    app->add_option("--data-dir", g.data_dir,
                    "where the servers keep their data (default $KAMAELIA_DATA_DIR, else ./var)");
    app->add_option("--stop-timeout", g.stop_timeout,
                    "seconds a stop waits for connections to finish before it closes them (default 8)");
    app->add_option("--introspect", g.introspect,
                    "stream the live component graph and its counters on this TCP port (see `kamaelia graph`)");
    app->add_option("--introspect-bind", g.introspect_bind, "address for --introspect (default 127.0.0.1)");
    app->add_option("--console", g.console,
                    "serve the live console (graph page, /metrics, /healthz, /api/graph) over HTTP on this port");
    app->add_option("--console-bind", g.console_bind, "address for --console and --metrics-port (default 127.0.0.1)");
    app->add_option("--metrics-port", g.metrics_port, "serve only /metrics and /healthz on this port");
}

// The introspection server: every connection gets its own introspector,
// which sends the whole graph, then what changed, once a second.
struct introspect_server : k::server_core {
    introspect_server() {
        server_name = "introspect";
        bind_address = "127.0.0.1"; // it shows the daemon's insides: local by default
        max_connections = 16;
        protocol = [](const k::connection_info&) {
            return std::make_unique<k::introspection::introspector>(std::chrono::seconds(1), true);
        };
    }
};

std::shared_ptr<spdlog::logger> make_logger(const std::optional<std::string>& file) {
    if (file) return spdlog::basic_logger_mt("kamaelia", *file);
    return spdlog::stderr_color_mt("kamaelia");
}

void raise_fd_limit() {
    rlimit r{};
    if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
        r.rlim_cur = r.rlim_max;
        setrlimit(RLIMIT_NOFILE, &r);
    }
}

// <data-dir>/run/listeners: "NAME ADDR:PORT" a line, for `kamaelia health`.
// Written whole, then renamed into place, so a reader never sees half of it.
void write_listeners(const std::string& data_dir, const std::vector<k::server_core*>& servers) {
    auto path = kd::listeners_path(data_dir);
    std::error_code ec;
    std::filesystem::create_directories(path.parent_path(), ec);
    auto tmp = path;
    tmp += ".tmp";
    {
        std::ofstream f(tmp, std::ios::trunc);
        // "127.0.0.1:10023", "[::]:1601" or "unix:/run/policy.sock"
        for (auto* s : servers) f << s->server_name << ' ' << s->address_text() << '\n';
        if (!f) {
            spdlog::warn("cannot write {}: `kamaelia health` will not find the servers", tmp.string());
            return;
        }
    }
    std::filesystem::rename(tmp, path, ec);
    if (ec) spdlog::warn("cannot write {}: {}", path.string(), ec.message());
}

// Runs the given servers (and what they need) until SIGTERM/SIGINT.
int serve(const std::vector<const kd::server_module*>& which, const std::map<std::string, kd::server_flags>& flags,
          const global_flags& g) {
    // flag > environment > file > default: the flags are applied over `cf`,
    // which holds the file with the environment layered on top.
    std::unique_ptr<kd::config_file> cf;
    double stop_timeout = default_stop_timeout;
    try {
        if (auto c = kd::load_config(g.config, kd::process_environment(), config_keys()))
            cf = std::make_unique<kd::config_file>(std::move(*c));
        if (g.stop_timeout) {
            if (*g.stop_timeout < 0) throw kd::config_error("--stop-timeout must not be negative");
            stop_timeout = *g.stop_timeout;
        } else if (cf) {
            stop_timeout = cf->get_seconds("kamaelia", "stop-timeout").value_or(default_stop_timeout);
        }
    } catch (const kd::config_error& e) {
        std::cerr << "kamaelia: " << e.what() << "\n";
        return 2;
    }
    auto log_file = g.log_file;
    if (!log_file && cf) log_file = cf->get("kamaelia", "log-file");
    std::string level = g.log_level.value_or(cf ? cf->get("kamaelia", "log-level").value_or("info") : "info");
    try {
        spdlog::set_default_logger(make_logger(log_file));
    } catch (const spdlog::spdlog_ex& e) {
        std::cerr << "kamaelia: cannot open the log: " << e.what() << "\n";
        return 2;
    }
    auto lvl = spdlog::level::from_str(level);
    if (lvl == spdlog::level::off && level != "off") {
        std::cerr << "kamaelia: unknown log level '" << level << "'\n";
        return 2;
    }
    spdlog::set_level(lvl);
    spdlog::flush_on(spdlog::level::info);
    for (const auto& name : kd::env_ignored(kd::process_environment(), config_keys()))
        spdlog::warn("{}: not a config key (KAMAELIA_<SECTION>_<KEY>), ignored", name);

    std::string data_dir = g.data_dir.value_or(cf ? cf->get("kamaelia", "data-dir").value_or("./var") : "./var");
    std::error_code fec;
    std::filesystem::create_directories(data_dir, fec);
    if (fec) {
        spdlog::critical("cannot create the data directory {}: {}", data_dir, fec.message());
        std::cerr << "kamaelia: cannot create the data directory " << data_dir << ": " << fec.message() << "\n";
        return 1;
    }
    raise_fd_limit();

    k::scheduler sched;
    kd::runtime rt(sched, cf.get(), data_dir);
    try {
        for (const auto* m : which) {
            static const kd::server_flags none;
            m->build(rt, flags.count(m->name) ? flags.at(m->name) : none);
        }
        std::optional<std::uint16_t> cport = g.console;
        if (!cport && cf) cport = cf->get_port("kamaelia", "console");
        std::optional<std::uint16_t> mport = g.metrics_port;
        if (!mport && cf) mport = cf->get_port("kamaelia", "metrics-port");
        if (cport || mport) {
            if (cport) sched.set_profiling(true); // CPU time per component, shown on the page
            std::string cbind =
                g.console_bind.value_or(cf ? cf->get("kamaelia", "console-bind").value_or("127.0.0.1") : "127.0.0.1");
            k::console::start(rt, cbind, cport, mport);
        }
        std::optional<std::uint16_t> iport = g.introspect;
        if (!iport && cf) iport = cf->get_port("kamaelia", "introspect");
        if (iport) {
            sched.set_profiling(true); // CPU time per component, for the STAT lines
            auto s = std::make_unique<introspect_server>();
            s->port = *iport;
            if (auto b = g.introspect_bind ? g.introspect_bind
                                           : (cf ? cf->get("kamaelia", "introspect-bind") : std::nullopt))
                s->bind_address = *b;
            rt.add_server(std::move(s));
        }
        // The drain is bounded: no server waits longer than the stop timeout.
        auto bound = std::chrono::duration_cast<k::duration>(std::chrono::duration<double>(stop_timeout));
        for (auto* s : rt.servers()) {
            s->grace = std::min(s->grace, bound);
            s->activate(sched);
            s->listen(); // a busy port fails here, before anything runs
        }
        write_listeners(data_dir, rt.servers());
    } catch (const kd::config_error& e) {
        std::cerr << "kamaelia: " << e.what() << "\n";
        return 2;
    } catch (const std::exception& e) {
        spdlog::critical("{}", e.what());
        std::cerr << "kamaelia: " << e.what() << "\n";
        return 1;
    }

    asio::signal_set signals(sched.io(), SIGINT, SIGTERM, SIGHUP);
    asio::steady_timer stop_timer(sched.io());
    std::function<void(const asio::error_code&, int)> on_signal = [&](const asio::error_code& ec, int sig) {
        if (ec) return;
        if (sig == SIGHUP) {
            spdlog::info("SIGHUP: reopening logs");
            if (log_file) {
                spdlog::drop("kamaelia");
                auto l = make_logger(log_file);
                l->set_level(lvl);
                spdlog::set_default_logger(l);
            }
            rt.reload();
            signals.async_wait(on_signal);
            return;
        }
        spdlog::info("{}: stopping (connections get up to {}s to finish)", sig == SIGTERM ? "SIGTERM" : "SIGINT",
                     stop_timeout);
        std::filesystem::remove(kd::listeners_path(data_dir), fec);
        rt.stopping();
        for (auto* s : rt.servers()) s->stop_serving();
        for (auto* c : rt.services()) deliver(*c, "control", k::message(k::shutdown_microprocess("daemon stopping")));
        // A second signal does not wait for the grace period.
        signals.async_wait([&](const asio::error_code& e2, int) {
            if (!e2) sched.stop();
        });
        // Nor does a drain that overruns the stop timeout (a service that
        // does not finish): a second later everything stops, still exit 0.
        stop_timer.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
            std::chrono::duration<double>(stop_timeout + 1)));
        stop_timer.async_wait([&](const asio::error_code& e2) {
            if (e2) return;
            spdlog::warn("stop timeout: {}s passed, closing what is left", stop_timeout);
            sched.stop();
        });
    };
    signals.async_wait(on_signal);
    sched.run();
    signals.cancel();
    stop_timer.cancel();
    bool failed = false;
    for (auto* s : rt.servers()) failed = failed || s->failed();
    spdlog::info("stopped");
    return failed ? 1 : 0;
}

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"kamaelia: Kamaelia's component model in C++20, and the servers built on it"};
    app.require_subcommand(1);
    app.set_version_flag("--version", std::string("kamaelia ") + KAMAELIA_VERSION);
    global_flags g;
    std::map<std::string, kd::server_flags> flags;

    auto modules = kd::server_modules();
    std::sort(modules.begin(), modules.end(), [](const auto& a, const auto& b) { return a.order < b.order; });
    std::vector<std::pair<CLI::App*, const kd::server_module*>> server_cmds;
    std::string all_names;
    for (const auto& m : modules) {
        auto* sub = app.add_subcommand(m.name, m.help);
        add_server_flags(sub, flags[m.name]);
        add_global_flags(sub, g);
        if (m.add_flags) m.add_flags(*sub);
        server_cmds.emplace_back(sub, &m);
        if (m.in_all) all_names += (all_names.empty() ? "" : ", ") + m.name;
    }
    auto* all = app.add_subcommand("all", "every built-in server in one process: " + all_names);
    add_global_flags(all, g);
    all->add_option("--greylist-store", kd::greylist_store_flag,
                    "the greylist store `grey` and `policy` share: postgresql://HOST/DB or a SQLite file");
    all->add_option("--bbs-store", kd::bbs_store_flag,
                    "the board's store (`bbs`): postgresql://HOST/DB or a SQLite file");
    std::vector<std::pair<CLI::App*, const kd::tool_module*>> tool_cmds;
    for (const auto& t : kd::tool_modules()) {
        auto* sub = app.add_subcommand(t.name, t.help);
        if (t.setup) t.setup(*sub);
        tool_cmds.emplace_back(sub, &t);
    }

    CLI11_PARSE(app, argc, argv);
    std::signal(SIGPIPE, SIG_IGN);
    for (auto& [sub, t] : tool_cmds)
        if (*sub) return t->run();
    for (auto& [sub, m] : server_cmds)
        if (*sub) return serve({m}, flags, g);
    if (*all) {
        std::vector<const kd::server_module*> which;
        for (const auto& m : modules)
            if (m.in_all) which.push_back(&m);
        return serve(which, flags, g);
    }
    return 2;
}
