// `kamaelia health [HOST:PORT]`: exits 0 if something accepts a TCP
// connection there within the timeout. Without a target it checks every
// address the running daemon listens on, from <data-dir>/run/listeners
// (the container's HEALTHCHECK: it follows whichever servers run).
#include "daemon.hpp"

#include <asio/connect.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/steady_timer.hpp>

#include <fstream>
#include <iostream>
#include <sstream>

namespace kd = kamaelia::daemon;

namespace {

std::string target;
std::string config_path;
std::string data_dir;
double timeout_s = 3;

// A unix-domain listener ("unix:PATH"): connect, close.
bool probe_unix(const std::string& what, const std::string& path) {
    asio::io_context io;
    asio::local::stream_protocol::socket sock(io);
    asio::error_code ec;
    sock.connect(asio::local::stream_protocol::endpoint(path), ec); // a local connect does not wait on a network
    if (ec) {
        std::cerr << "kamaelia health: " << what << ": " << ec.message() << "\n";
        return false;
    }
    return true;
}

// Connects and closes without sending a byte.
bool probe(const std::string& what) {
    if (what.rfind("unix:", 0) == 0) return probe_unix(what, what.substr(5));
    auto hp = kd::split_host_port(what);
    if (!hp) {
        std::cerr << "kamaelia health: expected HOST:PORT, got " << what << "\n";
        return false;
    }
    auto [host, port] = *hp;
    // A wildcard address is reached through the loopback of its family.
    if (host == "0.0.0.0") host = "127.0.0.1";
    if (host == "::") host = "::1";
    asio::io_context io;
    asio::ip::tcp::resolver res(io);
    asio::ip::tcp::socket sock(io);
    asio::error_code result = asio::error::timed_out;
    asio::steady_timer timer(
        io, std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(timeout_s)));
    asio::error_code rec;
    auto eps = res.resolve(host, port, rec);
    if (rec) {
        std::cerr << "kamaelia health: " << what << ": " << rec.message() << "\n";
        return false;
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
        std::cerr << "kamaelia health: " << what << ": " << result.message() << "\n";
        return false;
    }
    return true;
}

// --data-dir, else the environment and config file the daemon reads
// (KAMAELIA_DATA_DIR, [kamaelia] data-dir of --config or KAMAELIA_CONFIG), else ./var.
std::string find_data_dir() {
    if (!data_dir.empty()) return data_dir;
    auto cf = kd::load_config(config_path, kd::process_environment(), kd::config_keys());
    if (cf)
        if (auto d = cf->get("kamaelia", "data-dir")) return *d;
    return "./var";
}

int health() {
    if (!target.empty()) return probe(target) ? 0 : 1;
    std::string dir;
    try {
        dir = find_data_dir();
    } catch (const kd::config_error& e) {
        std::cerr << "kamaelia health: " << e.what() << "\n";
        return 2;
    }
    auto path = kd::listeners_path(dir);
    std::ifstream f(path);
    if (!f) {
        std::cerr << "kamaelia health: no " << path.string() << " (is the daemon running with this data dir?)\n";
        return 1;
    }
    std::string line;
    int checked = 0;
    bool ok = true;
    while (std::getline(f, line)) {
        std::istringstream in(line);
        std::string name, address;
        if (!(in >> name >> address)) continue;
        ++checked;
        if (!probe(address)) {
            std::cerr << "kamaelia health: " << name << " at " << address << " does not answer\n";
            ok = false;
        }
    }
    if (checked == 0) {
        std::cerr << "kamaelia health: " << path.string() << " lists no server\n";
        return 1;
    }
    return ok ? 0 : 1;
}

const kd::register_tool reg{{
    .name = "health",
    .help = "exits 0 if a server answers at HOST:PORT, or (no argument) every server the daemon listens with",
    .setup =
        [](CLI::App& app) {
            app.add_option("target", target, "HOST:PORT (default: each line of <data-dir>/run/listeners)");
            app.add_option("--timeout", timeout_s, "seconds to wait for each (default 3)");
            app.add_option("--data-dir", data_dir,
                           "the daemon's data directory (default $KAMAELIA_DATA_DIR, else ./var)");
            app.add_option("--config", config_path, "the daemon's config file, for its data-dir");
        },
    .run = health,
}};

} // namespace
