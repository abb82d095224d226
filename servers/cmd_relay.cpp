// `kamaelia relay --source tcp://HOST:PORT|file:PATH|-`: the streaming
// splitter (default port 1800; not part of `all`: it needs a source).
#include "daemon.hpp"
#include "relay.hpp"

#include <kamaelia/chassis/backplane.hpp>
#include <kamaelia/chassis/pipeline.hpp>
#include <kamaelia/net/tcp_client.hpp>

#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace kd = kamaelia::daemon;
namespace ks = kamaelia::servers;

namespace {

std::optional<std::string> source_flag;

// Ends the relay when the source ends: the backplane ends every client
// (each flushes, then closes) and the server stops accepting.
class source_watch : public kamaelia::component {
public:
    source_watch(std::string bp, kamaelia::server_core* server) : bp_(std::move(bp)), server_(server) {}
    std::string type_name() const override { return "relay_source_end"; }

protected:
    kamaelia::task main() override {
        while (!shutdown_requested()) {
            while (recv_message("inbox")) {}
            co_await wait_any();
        }
        bool source_ended = shutdown_kind() == kamaelia::ipc_kind::producer_finished ||
                            shutdown_kind() == kamaelia::ipc_kind::socket_shutdown;
        spdlog::info("relay: the source has ended ({}); ending the clients", shutdown_text());
        try {
            kamaelia::deliver(kamaelia::backplane::find(*sched(), bp_), "control",
                              kamaelia::message(kamaelia::producer_finished("relay source ended")));
        } catch (const std::exception&) {
            // already gone (the daemon is stopping)
        }
        if (source_ended) server_->stop_serving();
        forward_shutdown();
    }

private:
    std::string bp_;
    kamaelia::server_core* server_;
};

const kd::register_server reg{{
    .name = "relay",
    .help = "streaming splitter: one source (--source tcp://HOST:PORT, file:PATH or -) served to every client "
            "(default port 1800)",
    .order = 90,
    .in_all = false,
    .keys = {"source"},
    .add_flags =
        [](CLI::App& app) {
            app.add_option("--source", source_flag, "tcp://HOST:PORT, file:PATH or - (stdin): the stream to relay");
        },
    .build =
        [](kd::runtime& rt, const kd::server_flags& f) {
            auto text = source_flag ? source_flag : (rt.config() ? rt.config()->get("relay", "source") : std::nullopt);
            if (!text) throw kd::config_error("relay: --source tcp://HOST:PORT|file:PATH|- is required");
            ks::relay_source_spec spec;
            try {
                spec = ks::parse_relay_source(*text);
            } catch (const std::invalid_argument& e) {
                throw kd::config_error(std::string("relay: ") + e.what());
            }
            auto s = std::make_unique<ks::relay_server>();
            kd::configure(*s, "relay", f, rt.config());
            rt.add_service(std::make_unique<kamaelia::backplane>(s->backplane_name, kamaelia::delivery_policy::fail));
            std::unique_ptr<kamaelia::component> source;
            if (spec.kind == ks::relay_source_spec::tcp) {
                auto client = std::make_unique<kamaelia::pipeline>(
                    std::make_unique<kamaelia::tcp_client>(spec.host, spec.port), ks::rechunk());
                source = std::move(client);
            } else {
                int fd = 0;
                if (spec.kind == ks::relay_source_spec::file) {
                    // Non-blocking: opening a FIFO must not wait for its writer.
                    fd = ::open(spec.path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
                    if (fd < 0) throw kd::config_error("relay: cannot open " + spec.path + ": " + std::strerror(errno));
                }
                source = std::make_unique<ks::stream_reader>(fd);
            }
            // The tutorial's shape: a producer pipeline into publish_to; its end
            // reaches source_watch, which ends the backplane and the server.
            rt.add_service(std::make_unique<kamaelia::pipeline>(
                std::move(source), kamaelia::publish_to(s->backplane_name), source_watch(s->backplane_name, s.get())));
            rt.add_server(std::move(s));
        },
}};

} // namespace
