// The daemon's plug-in points. Every sub-command of `kamaelia` lives in its
// own servers/cmd_<name>.cpp and registers itself here at static-init time,
// so adding a server never edits main.cpp:
//
//   - a *server module* is a listening server: it gets the common flags
//     (--bind, --port, ...), a section of its own in the config file, and a
//     place in `kamaelia all` (in `order`);
//   - a *tool module* is a one-shot command (grey-db, bbs-user, mcast-send,
//     graph, ...): it sets up its own flags and returns the exit code.
#pragma once

#include "config.hpp"

#include <kamaelia/core/component.hpp>
#include <kamaelia/core/metrics.hpp>
#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/core/scheduler_group.hpp>
#include <kamaelia/core/services.hpp>
#include <kamaelia/net/server_core.hpp>

#include <CLI/CLI.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace kamaelia::daemon {

// Flags every listening server takes; unset ones fall back to the config
// file, then to the server's own defaults.
struct server_flags {
    std::optional<std::string> bind;
    std::optional<std::uint16_t> port;
    std::optional<std::size_t> max_connections;
    std::optional<std::size_t> max_per_address;
    std::optional<double> idle_timeout;
    std::optional<std::size_t> max_line;
    std::optional<std::string> tls_cert; // both set: the server speaks TLS
    std::optional<std::string> tls_key;
};

// The keys of server_flags, as they appear in a config section.
inline const std::set<std::string>& common_server_keys() {
    static const std::set<std::string> keys = {"bind",         "port",     "max-connections", "max-per-address",
                                               "idle-timeout", "max-line", "tls-cert",        "tls-key"};
    return keys;
}

// "HOST:PORT", "[v6]:PORT" → host and port text; nullopt without a port.
inline std::optional<std::pair<std::string, std::string>> split_host_port(const std::string& target) {
    auto colon = target.rfind(':');
    if (colon == std::string::npos || colon + 1 == target.size()) return std::nullopt;
    std::string host = target.substr(0, colon);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    return std::make_pair(host, target.substr(colon + 1));
}

// Applies default < file < flag to the settings server_core and its
// subclasses share. `max_line` is taken if the server has one.
template <class Server>
void configure(Server& s, const std::string& section, const server_flags& f, const config_file* cf) {
    auto secs = [](double v) { return std::chrono::duration_cast<duration>(std::chrono::duration<double>(v)); };
    if (cf) {
        if (auto v = cf->get(section, "bind")) s.bind_address = *v;
        if (auto v = cf->get_port(section, "port")) s.port = *v;
        if (auto v = cf->get_uint(section, "max-connections")) s.max_connections = *v;
        if (auto v = cf->get_uint(section, "max-per-address")) s.max_per_address = *v;
        if (auto v = cf->get_seconds(section, "idle-timeout")) s.inactivity_timeout = secs(*v);
        if constexpr (requires { s.max_line; })
            if (auto v = cf->get_uint(section, "max-line")) s.max_line = *v;
    }
    if (f.bind) s.bind_address = *f.bind;
    if (f.port) s.port = *f.port;
    if (f.max_connections) s.max_connections = *f.max_connections;
    if (f.max_per_address) s.max_per_address = *f.max_per_address;
    if (f.idle_timeout) s.inactivity_timeout = secs(*f.idle_timeout);
    if constexpr (requires { s.max_line; })
        if (f.max_line) s.max_line = *f.max_line;
    auto cert = f.tls_cert ? f.tls_cert : (cf ? cf->get(section, "tls-cert") : std::nullopt);
    auto key = f.tls_key ? f.tls_key : (cf ? cf->get(section, "tls-key") : std::nullopt);
    if (cert || key) {
        if (!cert || !key) throw config_error(section + ": tls-cert and tls-key go together");
        try {
            s.tls = make_server_tls(*cert, *key);
        } catch (const std::runtime_error& e) {
            throw config_error(section + ": " + e.what());
        }
    }
}

// What a server module is given to build itself. Everything added here is
// owned by the daemon and lives until the scheduler has stopped.
class runtime {
public:
    runtime(scheduler& s, const config_file* cf, std::string data_dir)
        : sched_(s),
          cf_(cf),
          data_dir_(std::move(data_dir)) {}

    scheduler& sched() noexcept { return sched_; }
    // The scheduler group when the daemon runs several schedulers (set by
    // main before the modules are built; none with one scheduler).
    void set_group(scheduler_group* g) noexcept { group_ = g; }
    // Its services (null with one scheduler): a store shared by every
    // connection is registered there, once for the whole daemon
    // (register_service_in).
    service_directory* group() const noexcept { return group_ ? &group_->services() : nullptr; }
    // Every scheduler, scheduler i at index i (just sched() with one).
    std::vector<scheduler*> schedulers() {
        if (!group_) return {&sched_};
        std::vector<scheduler*> v;
        for (std::size_t i = 0; i < group_->size(); ++i) v.push_back(&(*group_)[i]);
        return v;
    }
    // A server's shard on another scheduler (main makes them): the console
    // shows it as a server too, and /metrics adds its counters to `of`'s.
    struct shard_ref {
        server_core* shard;
        const server_core* of; // the server's first shard, on scheduler 0
        std::size_t scheduler; // the index of the shard's scheduler
    };
    void note_shard(server_core& s, const server_core& of, std::size_t scheduler) {
        shards_.push_back(&s);
        shard_refs_.push_back({&s, &of, scheduler});
    }
    const std::vector<server_core*>& shards() const noexcept { return shards_; }
    const std::vector<shard_ref>& shard_refs() const noexcept { return shard_refs_; }
    const config_file* config() const noexcept { return cf_; }
    const std::string& data_dir() const noexcept { return data_dir_; }

    // A listening server: activated and bound by the daemon (a busy port
    // fails the start), told to stop serving on SIGTERM.
    server_core& add_server(std::unique_ptr<server_core> s) {
        servers_.push_back(s.get());
        owned_.push_back(std::move(s));
        return *servers_.back();
    }
    // A shared component (a backplane, a database front): activated now,
    // sent shutdown_microprocess once the servers have been told to stop.
    component& add_service(std::unique_ptr<component> c) {
        c->activate(sched_);
        services_.push_back(c.get());
        owned_.push_back(std::move(c));
        return *services_.back();
    }
    // Called on SIGHUP (after the logs are reopened): reload lists and such.
    void on_reload(std::function<void()> f) { reload_.push_back(std::move(f)); }
    // Called on SIGTERM/SIGINT before the servers stop serving.
    void on_stop(std::function<void()> f) { stop_.push_back(std::move(f)); }
    // Anything else that must outlive the scheduler run (a store, a thread).
    template <class T>
    T& keep(std::shared_ptr<T> p) {
        kept_.push_back(p);
        return *p;
    }

    // One object shared by several modules of the same process (e.g. the
    // greylist that both `grey` and `policy` use under `kamaelia all`):
    // made by `make` the first time `key` is asked for.
    template <class T, class Make>
    std::shared_ptr<T> shared(const std::string& key, Make&& make) {
        for (auto& [k, p] : named_)
            if (k == key) return std::static_pointer_cast<T>(p);
        std::shared_ptr<T> p = make();
        named_.emplace_back(key, p);
        return p;
    }

    // What GET /metrics reports: a module adds a collector for counters of
    // its own (read on the scheduler thread when scraped).
    metrics::registry& metrics() noexcept { return metrics_; }
    // A check for /healthz: returns empty while healthy, else the reason
    // (a store or backplane that cannot be reached).
    void add_health_check(std::function<std::string()> f) { health_.push_back(std::move(f)); }
    const std::vector<std::function<std::string()>>& health_checks() const noexcept { return health_; }

    const std::vector<server_core*>& servers() const noexcept { return servers_; }
    const std::vector<component*>& services() const noexcept { return services_; }
    void reload() {
        for (auto& f : reload_) f();
    }
    void stopping() {
        for (auto& f : stop_) f();
    }

private:
    scheduler& sched_;
    scheduler_group* group_ = nullptr;
    std::vector<server_core*> shards_;
    std::vector<shard_ref> shard_refs_;
    const config_file* cf_;
    std::string data_dir_;
    std::vector<server_core*> servers_;
    std::vector<component*> services_;
    std::vector<std::function<void()>> reload_;
    std::vector<std::function<void()>> stop_;
    std::vector<std::shared_ptr<void>> kept_;
    std::vector<std::pair<std::string, std::shared_ptr<void>>> named_;
    metrics::registry metrics_;
    std::vector<std::function<std::string()>> health_;
    std::vector<std::unique_ptr<component>> owned_; // last member: destroyed first
};

struct server_module {
    std::string name;           // the sub-command and the config section
    std::string help;           // one line for --help
    int order = 100;            // start order in `kamaelia all`
    bool in_all = true;         // part of `kamaelia all`
    std::set<std::string> keys; // config keys beyond common_server_keys()
    // Adds the module's own flags (storage is the module's, e.g. statics).
    std::function<void(CLI::App&)> add_flags;
    // Builds the server(s): configure with `configure(...)`, then
    // rt.add_server(...). Throw config_error for a bad value.
    std::function<void(runtime&, const server_flags&)> build;
};

struct tool_module {
    std::string name;
    std::string help;
    std::function<void(CLI::App&)> setup; // adds options and positionals
    std::function<int()> run;             // runs once parsed; the exit code
};

std::vector<server_module>& server_modules();
std::vector<tool_module>& tool_modules();
// Every config section and its keys ([kamaelia] and one per server module).
std::map<std::string, std::set<std::string>> config_keys();

// Where a running daemon lists the addresses it listens on, one
// "NAME ADDR:PORT" a line (IPv6 in brackets); `kamaelia health` reads it.
inline std::filesystem::path listeners_path(const std::string& data_dir) {
    return std::filesystem::path(data_dir) / "run" / "listeners";
}

// `static const kamaelia::daemon::register_server reg{{...}};` in a cmd_*.cpp.
struct register_server {
    explicit register_server(server_module m) { server_modules().push_back(std::move(m)); }
};
struct register_tool {
    explicit register_tool(tool_module m) { tool_modules().push_back(std::move(m)); }
};

} // namespace kamaelia::daemon
