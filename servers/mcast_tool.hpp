// What the two multicast tools share (`mcast-send`, `mcast-recv`): the
// flags for group, port and interface, with the safe defaults of
// kamaelia::multicast_options (224.168.2.9, 1600, 127.0.0.1), and running
// the tool's graph until it is done.
#pragma once

#include <kamaelia/core/component.hpp>
#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/net/udp_options.hpp>

#include <asio/signal_set.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <csignal>
#include <string>

namespace kamaelia::daemon {

inline void add_multicast_flags(CLI::App& app, multicast_options& o) {
    app.add_option("--group", o.group, "IPv4 multicast group (default 224.168.2.9)");
    app.add_option("--port", o.port, "UDP port (default 1600)");
    app.add_option("--interface", o.interface,
                   "address of the interface to send from / join on (default 127.0.0.1: this host only)");
}

// Tools log to stderr (stdout carries their result line).
inline void tool_logger(const std::string& name) {
    if (!spdlog::get(name)) spdlog::set_default_logger(spdlog::stderr_color_mt(name));
}

// Runs `job` on `s` until it has ended; SIGINT/SIGTERM send it
// shutdown_microprocess (a carousel sent "until stopped" ends that way).
inline void run_job(scheduler& s, component& job) {
    asio::signal_set signals(s.io(), SIGINT, SIGTERM);
    signals.async_wait([&job](const asio::error_code& ec, int) {
        if (!ec) deliver(job, "control", message(shutdown_microprocess("signal")));
    });
    job.activate(s);
    s.run();
    asio::error_code ec;
    signals.cancel(ec);
}

} // namespace kamaelia::daemon
