// `kamaelia graph --connect HOST:PORT`: reads a daemon's introspection
// stream (`--introspect PORT`) until it holds a whole picture and prints it
// as Graphviz dot (`| dot -Tsvg > graph.svg`).
#include "daemon.hpp"

#include <kamaelia/core/introspection.hpp>

#include <asio/connect.hpp>
#include <asio/ip/tcp.hpp>

#include <array>
#include <fstream>
#include <iostream>

namespace kd = kamaelia::daemon;

namespace {

std::string target;
std::string output;
unsigned frames_wanted = 1;
double timeout_s = 10;

int graph() {
    auto hp = kd::split_host_port(target);
    if (!hp) {
        std::cerr << "kamaelia graph: --connect expects HOST:PORT, got " << target << "\n";
        return 2;
    }
    const auto& [host, port] = *hp;
    asio::io_context io;
    asio::ip::tcp::socket sock(io);
    asio::error_code ec;
    auto eps = asio::ip::tcp::resolver(io).resolve(host, port, ec);
    if (!ec) asio::connect(sock, eps, ec);
    if (ec) {
        std::cerr << "kamaelia graph: " << target << ": " << ec.message() << "\n";
        return 1;
    }
    kamaelia::introspection::text_reader reader;
    std::string pending;
    std::array<char, 64 * 1024> chunk{};
    std::string error;
    std::function<void()> read = [&] {
        sock.async_read_some(asio::buffer(chunk), [&](const asio::error_code& e, std::size_t n) {
            if (e) {
                error = e == asio::error::eof ? "the stream ended" : e.message();
                return;
            }
            pending.append(chunk.data(), n);
            std::size_t start = 0;
            for (std::size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
                reader.feed(std::string_view(pending).substr(start, nl - start));
                if (reader.frames() >= frames_wanted) {
                    sock.close();
                    return;
                }
            }
            pending.erase(0, start);
            read();
        });
    };
    read();
    io.run_for(
        std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(timeout_s)));
    if (reader.frames() < frames_wanted) {
        std::cerr << "kamaelia graph: " << target << ": no complete picture after " << timeout_s << " s"
                  << (error.empty() ? "" : " (" + error + ")") << " - is it a --introspect port?\n";
        return 1;
    }
    std::string dot = kamaelia::introspection::to_dot(reader.current());
    if (output.empty() || output == "-") {
        std::cout << dot;
        return 0;
    }
    std::ofstream f(output);
    f << dot;
    if (!f.flush()) {
        std::cerr << "kamaelia graph: cannot write " << output << "\n";
        return 1;
    }
    return 0;
}

const kd::register_tool reg{{
    .name = "graph",
    .help = "prints a running daemon's component graph (its --introspect port) as Graphviz dot",
    .setup =
        [](CLI::App& app) {
            app.add_option("--connect", target, "HOST:PORT of the introspection stream")->required();
            app.add_option("--output,-o", output, "write the dot here (default: standard output)");
            app.add_option("--frames", frames_wanted, "wait for this many updates (default 1: the first picture)");
            app.add_option("--timeout", timeout_s, "seconds to wait (default 10)");
        },
    .run = graph,
}};

} // namespace
