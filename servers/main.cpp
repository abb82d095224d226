// kamaelia: the daemon. One executable, a sub-command per built-in server or
// tool (each registers itself from its servers/cmd_*.cpp, see daemon.hpp);
// `kamaelia all` runs every listening server in one process. With
// --threads N (default auto: one per usable CPU) the process runs N
// schedulers, a thread each; a server that spreads gets a shard per
// scheduler on the same port (SO_REUSEPORT), its backplanes span them.
#include "config.hpp"
#include "console.hpp"
#include "daemon.hpp"
#include "greylist_runtime.hpp"
#include "store_choice.hpp"

#include <kamaelia/chassis/backplane.hpp>
#include <kamaelia/chassis/backplane_span.hpp>
#include <kamaelia/core/introspection.hpp>
#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/core/scheduler_group.hpp>

#include <asio/ip/tcp.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
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
    std::optional<std::string> threads;        // schedulers: a number or "auto"
};

} // namespace

namespace kamaelia::daemon {
std::map<std::string, std::set<std::string>> config_keys() {
    std::map<std::string, std::set<std::string>> keys = {
        {"kamaelia",
         {"log-level", "log-file", "data-dir", "introspect", "introspect-bind", "stop-timeout", "greylist-store",
          "bbs-store", "console", "console-bind", "metrics-port", "threads"}}};
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
    app->add_option("--threads", g.threads,
                    "schedulers, one thread each: N or auto (default: the CPUs this process may use)");
}

// Every server spreads its connections over the schedulers but the relay:
// its source's end stops the server, and a stream must not lose bytes at a
// scheduler's mailbox bound (a chat line may). The stores that grey, policy
// and bbs connections ask are services of the whole group (runtime::group()).
bool connections_stay_on_scheduler_0(const std::string& module) { return module == "relay"; }

// Another shard of `s` for another scheduler: the same settings and
// protocol factory (which may read the first shard's settings, never
// written once serving), its own listener on the same port, the caps shared.
std::unique_ptr<k::server_core> shard_of(const k::server_core& s) {
    auto c = std::make_unique<k::server_core>();
    c->bind_address = s.bind_address;
    c->port = s.port;
    c->protocol = s.protocol;
    c->server_name = s.server_name;
    c->reuse_address = s.reuse_address;
    c->reuse_port = true;
    c->tcp_nodelay = s.tcp_nodelay;
    c->keepalive = s.keepalive;
    c->backlog = s.backlog;
    c->max_connections = s.max_connections;
    c->max_per_address = s.max_per_address;
    c->inactivity_timeout = s.inactivity_timeout;
    c->grace = s.grace;
    c->socket_options = s.socket_options;
    c->tls = s.tls;
    c->shared_caps = s.shared_caps;
    c->log_listening = false; // "listening on" once per server
    return c;
}

// SO_REUSEPORT would let a second daemon of the same user bind a port this
// one is about to share among its shards: a plain bind first says "address
// in use" as it does for one scheduler.
void refuse_taken_port(const k::server_core& s) {
    if (s.port == 0) return;
    asio::io_context io;
    asio::error_code ec;
    auto addr = asio::ip::make_address(s.bind_address, ec);
    if (ec) return; // listen() names the bad address
    asio::ip::tcp::endpoint ep(addr, s.port);
    asio::ip::tcp::acceptor probe(io);
    probe.open(ep.protocol(), ec);
    if (ec) return;
    probe.set_option(asio::socket_base::reuse_address(true), ec);
    probe.bind(ep, ec);
    if (ec == asio::error::address_in_use) {
        std::string where = addr.is_v6() ? "[" + addr.to_string() + "]" : addr.to_string();
        throw std::system_error(ec, s.server_name + ": cannot bind " + where + ":" + std::to_string(s.port) +
                                        ": address in use");
    }
}

// The CPU seconds (user + system) a thread has used, from /proc: readable
// from another thread while it runs. nullopt once the thread is gone.
std::optional<double> thread_cpu_seconds(pid_t tid) {
    std::ifstream f("/proc/self/task/" + std::to_string(tid) + "/stat");
    std::string line;
    if (!f || !std::getline(f, line)) return std::nullopt;
    // After "pid (comm) ": state is field 3, utime 14, stime 15.
    auto paren = line.rfind(')');
    if (paren == std::string::npos || paren + 2 > line.size()) return std::nullopt;
    std::istringstream in(line.substr(paren + 2));
    std::string skip;
    for (int field = 3; field <= 13; ++field) in >> skip;
    unsigned long long user = 0, sys = 0;
    if (!(in >> user >> sys)) return std::nullopt;
    return static_cast<double>(user + sys) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// What runs on schedulers 1..N-1: the other shards of the servers that
// spread and each spanned backplane's copy, told to stop on SIGTERM.
struct remote_scheduler {
    std::vector<k::server_core*> servers;
    std::vector<k::component*> services;
};

// The introspection server: every connection gets its own introspector,
// which sends the whole graph (every scheduler's), then what changed, once
// a second.
struct introspect_server : k::server_core {
    explicit introspect_server(std::vector<k::scheduler*> schedulers) {
        server_name = "introspect";
        bind_address = "127.0.0.1"; // it shows the daemon's insides: local by default
        max_connections = 16;
        protocol = [schedulers](const k::connection_info&) {
            return std::make_unique<k::introspection::introspector>(std::chrono::seconds(1), true, schedulers);
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
    std::size_t threads = 1;
    try {
        if (auto c = kd::load_config(g.config, kd::process_environment(), config_keys()))
            cf = std::make_unique<kd::config_file>(std::move(*c));
        if (g.stop_timeout) {
            if (*g.stop_timeout < 0) throw kd::config_error("--stop-timeout must not be negative");
            stop_timeout = *g.stop_timeout;
        } else if (cf) {
            stop_timeout = cf->get_seconds("kamaelia", "stop-timeout").value_or(default_stop_timeout);
        }
        std::string t = g.threads ? *g.threads : (cf ? cf->get("kamaelia", "threads").value_or("auto") : "auto");
        threads = kd::parse_threads(t, k::usable_cpus());
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

    // One scheduler per thread. With one, scheduler 0 runs on this thread
    // exactly as the daemon always did; with more, each runs on a thread of
    // its own (kamaelia-sN) and this one waits.
    k::scheduler_group group(threads, k::group_options{.until_idle = true});
    k::scheduler& sched = group[0];
    kd::runtime rt(sched, cf.get(), data_dir);
    if (threads > 1) rt.set_group(&group);
    std::vector<remote_scheduler> remote(threads);
    // Shards beyond the first, by server; destroyed before the schedulers.
    std::map<k::server_core*, std::vector<k::server_core*>> shards;
    std::vector<std::unique_ptr<k::component>> remote_owned;
    try {
        for (const auto* m : which) {
            static const kd::server_flags none;
            std::size_t first_server = rt.servers().size(), first_service = rt.services().size();
            m->build(rt, flags.count(m->name) ? flags.at(m->name) : none);
            if (threads == 1 || connections_stay_on_scheduler_0(m->name)) continue;
            // Its backplanes span the group: a copy on every scheduler, joined.
            std::vector<k::backplane*> planes;
            for (std::size_t i = first_service; i < rt.services().size(); ++i)
                if (auto* bp = dynamic_cast<k::backplane*>(rt.services()[i])) planes.push_back(bp);
            for (k::backplane* bp : planes) {
                k::backplane_span::options o;
                o.overflow = bp->overflow() == k::delivery_policy::drop_newest ? k::delivery_policy::drop_newest
                                                                               : k::delivery_policy::drop_oldest;
                auto span = std::make_shared<k::backplane_span>(bp->backplane_name(), threads, o);
                rt.add_service(span->member(0));
                for (std::size_t i = 1; i < threads; ++i) {
                    auto copy = std::make_unique<k::backplane>(bp->backplane_name(), bp->overflow());
                    auto member = span->member(i);
                    copy->activate(group[i]);
                    member->activate(group[i]);
                    remote[i].services.push_back(copy.get());
                    remote[i].services.push_back(member.get());
                    remote_owned.push_back(std::move(copy));
                    remote_owned.push_back(std::move(member));
                }
            }
            // Its TCP servers get a shard per scheduler on the same port.
            for (std::size_t i = first_server; i < rt.servers().size(); ++i) {
                k::server_core* s = rt.servers()[i];
                if (!s->unix_path.empty()) continue; // no SO_REUSEPORT for unix sockets
                s->reuse_port = true;
                s->shared_caps = std::make_shared<k::connection_caps>();
                s->shard_name = "scheduler 0";
                auto& list = shards[s];
                for (std::size_t j = 1; j < threads; ++j) {
                    auto c = shard_of(*s);
                    c->shard_name = "scheduler " + std::to_string(j);
                    rt.note_shard(*c, *s, j);
                    remote[j].servers.push_back(c.get());
                    list.push_back(c.get());
                    remote_owned.push_back(std::move(c));
                }
            }
        }
        std::optional<std::uint16_t> cport = g.console;
        if (!cport && cf) cport = cf->get_port("kamaelia", "console");
        std::optional<std::uint16_t> mport = g.metrics_port;
        if (!mport && cf) mport = cf->get_port("kamaelia", "metrics-port");
        if (cport || mport) {
            if (cport) // CPU time per component, shown on the page
                for (std::size_t i = 0; i < threads; ++i) group[i].set_profiling(true);
            std::string cbind =
                g.console_bind.value_or(cf ? cf->get("kamaelia", "console-bind").value_or("127.0.0.1") : "127.0.0.1");
            k::console::start(rt, cbind, cport, mport);
        }
        std::optional<std::uint16_t> iport = g.introspect;
        if (!iport && cf) iport = cf->get_port("kamaelia", "introspect");
        if (iport) {
            for (std::size_t i = 0; i < threads; ++i) group[i].set_profiling(true); // CPU time for the STAT lines
            auto s = std::make_unique<introspect_server>(rt.schedulers());
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
            if (s->reuse_port) refuse_taken_port(*s);
            s->listen(); // a busy port fails here, before anything runs
            auto it = shards.find(s);
            if (it == shards.end()) continue;
            for (std::size_t j = 0; j < it->second.size(); ++j) {
                k::server_core* c = it->second[j];
                c->grace = s->grace;
                c->port = s->bound_port(); // port 0: the one the first shard got
                c->activate(group[j + 1]);
                c->listen();
            }
        }
        if (threads > 1) {
            spdlog::info("{} schedulers, one thread each", threads);
            // Each scheduler thread says which it is once it runs; /metrics
            // then reads its CPU time from /proc (the other schedulers'
            // counters are theirs alone, and are not read across threads).
            auto tids = std::make_shared<std::vector<std::atomic<pid_t>>>(threads);
            for (std::size_t i = 0; i < threads; ++i)
                group.post(i, [tids, i] { (*tids)[i].store(gettid(), std::memory_order_relaxed); });
            rt.metrics().add([tids, &group](k::metrics::exposition& x) {
                for (std::size_t i = 0; i < tids->size(); ++i) {
                    // Published by each scheduler's thread with relaxed stores
                    // (scheduler.hpp): safe to read from here.
                    x.gauge("kamaelia_scheduler_thread_run_queue_depth",
                            "components queued to run on each scheduler, as of its last cycle (--threads > 1)",
                            {{"scheduler", std::to_string(i)}},
                            static_cast<double>(group[i].observed_run_queue_depth()));
                    x.counter("kamaelia_scheduler_thread_wakeups_received_total",
                              "wake-ups of each scheduler from other threads: batches of posts, cross-scheduler "
                              "links and services (--threads > 1)",
                              {{"scheduler", std::to_string(i)}}, static_cast<double>(group[i].wakeups_received()));
                    pid_t tid = (*tids)[i].load(std::memory_order_relaxed);
                    if (tid == 0) continue;
                    if (auto cpu = thread_cpu_seconds(tid))
                        x.counter("kamaelia_scheduler_thread_cpu_seconds_total",
                                  "CPU time of each scheduler's thread (--threads > 1)",
                                  {{"scheduler", std::to_string(i)}}, *cpu);
                }
            });
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

    // The other schedulers drain their shards the way scheduler 0 does, each
    // on its own thread.
    auto stop_others = [&] {
        for (std::size_t i = 1; i < threads; ++i) {
            group.post(i, [&r = remote[i]] {
                for (auto* s : r.servers) s->stop_serving();
                for (auto* c : r.services)
                    if (!c->finished())
                        k::deliver(*c, "control", k::message(k::shutdown_microprocess("daemon stopping")));
            });
        }
    };
    asio::signal_set signals(sched.io(), SIGINT, SIGTERM, SIGHUP);
    asio::steady_timer stop_timer(sched.io());
    std::function<void(const asio::error_code&, int)> on_signal = [&](const asio::error_code& ec, int sig) {
        if (ec) return;
        if (sig == SIGHUP) {
            spdlog::info("SIGHUP: reopening logs");
            if (log_file) {
                // Other schedulers' threads may be logging through the old
                // logger right now: it is kept, only replaced.
                static std::vector<std::shared_ptr<spdlog::logger>> retired;
                retired.push_back(spdlog::default_logger());
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
        for (auto* c : rt.services())
            k::deliver(*c, "control", k::message(k::shutdown_microprocess("daemon stopping")));
        stop_others();
        // A second signal does not wait for the grace period.
        signals.async_wait([&](const asio::error_code& e2, int) {
            if (!e2) group.stop();
        });
        // Nor does a drain that overruns the stop timeout (a service that
        // does not finish): a second later everything stops, still exit 0.
        stop_timer.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
            std::chrono::duration<double>(stop_timeout + 1)));
        stop_timer.async_wait([&](const asio::error_code& e2) {
            if (e2) return;
            spdlog::warn("stop timeout: {}s passed, closing what is left", stop_timeout);
            group.stop();
        });
    };
    signals.async_wait(on_signal);
    if (threads == 1) {
        sched.run();
    } else {
        group.start();
        group.wait(0);
        // Scheduler 0 has drained (or was stopped): the others get what is
        // left of the stop timeout, then stop wherever they are.
        stop_others();
        auto deadline =
            std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                                   std::chrono::duration<double>(stop_timeout + 1));
        for (std::size_t i = 1; i < threads; ++i) {
            while (!group.finished(i) && std::chrono::steady_clock::now() < deadline)
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        group.join();
    }
    signals.cancel();
    stop_timer.cancel();
    bool failed = false;
    for (auto* s : rt.servers()) failed = failed || s->failed();
    for (auto& [_, list] : shards)
        for (auto* c : list) failed = failed || c->failed();
    // Last made, first gone: the shards before the backplanes they subscribe to.
    while (!remote_owned.empty()) remote_owned.pop_back();
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
