// kamaelia: the daemon. One executable, a sub-command per built-in server;
// `kamaelia all` runs every listening server in one process on one scheduler.
#include "builtin_servers.hpp"
#include "config.hpp"

#include <kamaelia/chassis/backplane.hpp>
#include <kamaelia/core/scheduler.hpp>

#include <CLI/CLI.hpp>
#include <asio/connect.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/signal_set.hpp>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <sys/resource.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#ifndef KAMAELIA_VERSION
#define KAMAELIA_VERSION "0.1.0"
#endif

namespace k = kamaelia;
namespace kd = kamaelia::daemon;

namespace {

// Flags for one server; unset ones fall back to the config file, then defaults.
struct server_flags {
    std::optional<std::string> bind;
    std::optional<std::uint16_t> port;
    std::optional<std::size_t> max_connections;
    std::optional<std::size_t> max_per_address;
    std::optional<double> idle_timeout;
    std::optional<std::size_t> max_line;
};

struct global_flags {
    std::string config;
    std::optional<std::string> log_level;
    std::optional<std::string> log_file;
    std::optional<std::string> data_dir;
};

const std::map<std::string, std::set<std::string>> config_keys = {
    {"kamaelia", {"log-level", "log-file", "data-dir"}},
    {"greeter", {"bind", "port", "max-connections", "max-per-address", "idle-timeout", "max-line"}},
    {"chat", {"bind", "port", "max-connections", "max-per-address", "idle-timeout", "max-line"}},
};

void add_server_flags(CLI::App* app, server_flags& f) {
    app->add_option("--bind", f.bind, "address to listen on (0.0.0.0, ::, 127.0.0.1...)");
    app->add_option("--port", f.port, "TCP port (0 picks a free one)");
    app->add_option("--max-connections", f.max_connections, "connections beyond this are refused");
    app->add_option("--max-per-address", f.max_per_address, "connections per client address (0: no cap)");
    app->add_option("--idle-timeout", f.idle_timeout, "seconds of client silence that close a connection");
    app->add_option("--max-line", f.max_line, "longest line accepted, in bytes");
}

void add_global_flags(CLI::App* app, global_flags& g) {
    app->add_option("--config", g.config, "config file (a section per server)");
    app->add_option("--log-level", g.log_level, "trace, debug, info, warn, error, critical, off");
    app->add_option("--log-file", g.log_file, "log to this file instead of stderr (reopened on SIGHUP)");
    app->add_option("--data-dir", g.data_dir, "where the servers keep their data (default ./var)");
}

// Applies default < file < flag to a server.
template <class Server>
void configure(Server& s, const std::string& section, const server_flags& f, const kd::config_file* cf) {
    if (cf) {
        if (auto v = cf->get(section, "bind")) s.bind_address = *v;
        if (auto v = cf->get_port(section, "port")) s.port = *v;
        if (auto v = cf->get_uint(section, "max-connections")) s.max_connections = *v;
        if (auto v = cf->get_uint(section, "max-per-address")) s.max_per_address = *v;
        if (auto v = cf->get_seconds(section, "idle-timeout"))
            s.inactivity_timeout = std::chrono::duration_cast<k::duration>(std::chrono::duration<double>(*v));
        if (auto v = cf->get_uint(section, "max-line")) s.max_line = *v;
    }
    if (f.bind) s.bind_address = *f.bind;
    if (f.port) s.port = *f.port;
    if (f.max_connections) s.max_connections = *f.max_connections;
    if (f.max_per_address) s.max_per_address = *f.max_per_address;
    if (f.idle_timeout)
        s.inactivity_timeout = std::chrono::duration_cast<k::duration>(std::chrono::duration<double>(*f.idle_timeout));
    if (f.max_line) s.max_line = *f.max_line;
}

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

int health(const std::string& target, double timeout_s) {
    auto colon = target.rfind(':');
    if (colon == std::string::npos) {
        std::cerr << "kamaelia health: expected HOST:PORT, got " << target << "\n";
        return 2;
    }
    std::string host = target.substr(0, colon);
    if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
    std::string port = target.substr(colon + 1);
    asio::io_context io;
    asio::ip::tcp::resolver res(io);
    asio::ip::tcp::socket sock(io);
    asio::error_code result = asio::error::timed_out;
    asio::steady_timer timer(io, std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                     std::chrono::duration<double>(timeout_s)));
    asio::error_code rec;
    auto eps = res.resolve(host, port, rec);
    if (rec) {
        std::cerr << "kamaelia health: " << target << ": " << rec.message() << "\n";
        return 1;
    }
    asio::async_connect(sock, eps, [&](const asio::error_code& ec, const asio::ip::tcp::endpoint&) {
        result = ec;
        timer.cancel();
    });
    timer.async_wait([&](const asio::error_code& ec) {
        if (!ec) sock.close();
    });
    io.run();
    if (result) {
        std::cerr << "kamaelia health: " << target << ": " << result.message() << "\n";
        return 1;
    }
    return 0;
}

// Runs the given servers (and what they need) until SIGTERM/SIGINT.
int serve(const std::vector<std::string>& which, const std::map<std::string, server_flags>& flags,
          const global_flags& g) {
    std::unique_ptr<kd::config_file> cf;
    try {
        if (!g.config.empty()) cf = std::make_unique<kd::config_file>(kd::config_file::load(g.config, config_keys));
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

    std::string data_dir = g.data_dir.value_or(cf ? cf->get("kamaelia", "data-dir").value_or("./var") : "./var");
    std::error_code fec;
    std::filesystem::create_directories(data_dir, fec);
    if (fec) {
        spdlog::critical("cannot create the data directory {}: {}", data_dir, fec.message());
        return 1;
    }
    raise_fd_limit();

    k::scheduler sched;
    std::vector<k::server_core*> servers;
    std::vector<k::component*> services;
    std::vector<std::unique_ptr<k::component>> owned;
    try {
        for (const auto& name : which) {
            static const server_flags none;
            const server_flags& f = flags.count(name) ? flags.at(name) : none;
            if (name == "greeter") {
                auto s = std::make_unique<k::servers::greeter_server>();
                configure(*s, "greeter", f, cf.get());
                servers.push_back(s.get());
                owned.push_back(std::move(s));
            } else if (name == "chat") {
                // A client that does not read is cut off once its queue is
                // full; the others never wait for it.
                auto bp = std::make_unique<k::backplane>("CHAT", k::delivery_policy::fail);
                bp->activate(sched);
                services.push_back(bp.get());
                owned.push_back(std::move(bp));
                auto s = std::make_unique<k::servers::chat_server>();
                configure(*s, "chat", f, cf.get());
                servers.push_back(s.get());
                owned.push_back(std::move(s));
            }
        }
        for (auto* s : servers) {
            s->activate(sched);
            s->listen(); // a busy port fails here, before anything runs
        }
    } catch (const kd::config_error& e) {
        std::cerr << "kamaelia: " << e.what() << "\n";
        return 2;
    } catch (const std::exception& e) {
        spdlog::critical("{}", e.what());
        std::cerr << "kamaelia: " << e.what() << "\n";
        return 1;
    }

    asio::signal_set signals(sched.io(), SIGINT, SIGTERM, SIGHUP);
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
            signals.async_wait(on_signal);
            return;
        }
        spdlog::info("{}: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        for (auto* s : servers) s->stop_serving();
        for (auto* c : services) c->in("control").push_forced(k::message(k::shutdown_microprocess("daemon stopping")));
        // A second signal does not wait for the grace period.
        signals.async_wait([&](const asio::error_code& e2, int) {
            if (!e2) sched.stop();
        });
    };
    signals.async_wait(on_signal);
    sched.run();
    signals.cancel();
    bool failed = false;
    for (auto* s : servers) failed = failed || s->failed();
    spdlog::info("stopped");
    return failed ? 1 : 0;
}

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"kamaelia: Kamaelia's component model in C++20, and the servers built on it"};
    app.require_subcommand(1);
    app.set_version_flag("--version", std::string("kamaelia ") + KAMAELIA_VERSION);
    global_flags g;
    std::map<std::string, server_flags> flags;

    auto* greeter = app.add_subcommand("greeter", "replies \"hello X\" to every line X (default port 1601)");
    add_server_flags(greeter, flags["greeter"]);
    add_global_flags(greeter, g);
    auto* chat = app.add_subcommand("chat", "telnet chat: every line goes to every client (default port 1700)");
    add_server_flags(chat, flags["chat"]);
    add_global_flags(chat, g);
    auto* all = app.add_subcommand("all", "every built-in server in one process (ports from --config)");
    add_global_flags(all, g);
    std::string target;
    double timeout = 3;
    auto* health_cmd = app.add_subcommand("health", "exits 0 if a server answers at HOST:PORT");
    health_cmd->add_option("target", target, "HOST:PORT")->required();
    health_cmd->add_option("--timeout", timeout, "seconds to wait (default 3)");

    CLI11_PARSE(app, argc, argv);
    std::signal(SIGPIPE, SIG_IGN);
    if (*health_cmd) return health(target, timeout);
    if (*greeter) return serve({"greeter"}, flags, g);
    if (*chat) return serve({"chat"}, flags, g);
    if (*all) return serve({"greeter", "chat"}, flags, g);
    return 2;
}
