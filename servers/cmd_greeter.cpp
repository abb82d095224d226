// `kamaelia greeter`: every line X gets "hello X" (default port 1601).
#include "builtin_servers.hpp"
#include "daemon.hpp"

namespace kd = kamaelia::daemon;

namespace {
const kd::register_server reg{{
    .name = "greeter",
    .help = "replies \"hello X\" to every line X (default port 1601)",
    .order = 10,
    .build =
        [](kd::runtime& rt, const kd::server_flags& f) {
            auto s = std::make_unique<kamaelia::servers::greeter_server>();
            kd::configure(*s, "greeter", f, rt.config());
            rt.add_server(std::move(s));
        },
}};
} // namespace
