// relay: the streaming splitter, Kamaelia's "Backplanes & Servers".
//
// One source is published to a backplane; a server_core whose protocol is
// just subscribe_to serves it to every client that connects, from the
// moment it joins. The original relayed DVB radio and a webcam this way;
// `kamaelia relay --source ...` is this program with a real source.
//
// Here the source is a ticker that starts once someone listens, and the
// listener is an in-process TCP client. When the source ends, its end
// reaches the backplane, which ends every client cleanly; the listener's
// end then stops the server, and run() returns.
//
// smoke-expect: listener heard: tick 1.*tick 3
#include <kamaelia/chassis/backplane.hpp>
#include <kamaelia/chassis/pipeline.hpp>
#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/net/server_core.hpp>
#include <kamaelia/net/tcp_client.hpp>
#include <kamaelia/util/console_echoer.hpp>

#include <chrono>
#include <memory>
#include <string>

using namespace kamaelia;
using namespace std::chrono_literals;

// The producer: three ticks, once the backplane has a listener.
class ticker : public component {
    task main() override {
        while (backplane::find(*sched(), "RADIO").subscribers() == 0) co_await sleep_for(10ms);
        for (int i = 1; i <= 3; ++i) co_await send("tick " + std::to_string(i) + "\n");
        send_forced(message(producer_finished()), "signal");
    }
};

struct relay_server : server_core {
    relay_server() {
        bind_address = "127.0.0.1";
        port = 0; // any free port
        protocol = [](const connection_info&) { return subscribe_to("RADIO"); };
    }
};

int main() {
    scheduler s;
    backplane radio("RADIO", delivery_policy::fail); // a client that does not read is cut off
    radio.activate(s);

    relay_server server;
    server.activate(s);
    server.listen();

    auto listener =
        pipeline(std::make_unique<tcp_client>("127.0.0.1", server.bound_port()), console_echoer("listener heard: "));
    auto source = pipeline(ticker(), publish_to("RADIO"));
    component::link({source, "signal"}, {radio, "control"});    // the source's end ends the clients
    component::link({listener, "signal"}, {server, "control"}); // the listener's end stops the server
    listener.activate(s);
    source.activate(s);
    s.run();
}
