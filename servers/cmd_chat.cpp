// `kamaelia chat`: telnet chat over a backplane (default port 1700).
#include "builtin_servers.hpp"
#include "daemon.hpp"

#include <kamaelia/chassis/backplane.hpp>

namespace kd = kamaelia::daemon;

namespace {
const kd::register_server reg{{
    .name = "chat",
    .help = "telnet chat: every line goes to every other client (default port 1700)",
    .order = 20,
    .build =
        [](kd::runtime& rt, const kd::server_flags& f) {
            auto s = std::make_unique<kamaelia::servers::chat_server>();
            kd::configure(*s, "chat", f, rt.config());
            // A client that does not read is cut off once its queue is full;
            // the others never wait for it.
            rt.add_service(std::make_unique<kamaelia::backplane>(s->backplane_name, kamaelia::delivery_policy::fail));
            rt.add_server(std::move(s));
        },
}};
} // namespace
