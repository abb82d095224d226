// An in-memory connection for protocol tests (Netty's EmbeddedChannel): the
// handler graph a protocol factory returns, wired to a fake socket that the
// test writes into and reads from, on the deterministic fixture.
#pragma once

#include "fixture.hpp"

#include <kamaelia/core/component.hpp>

#include <memory>
#include <string>

namespace kamaelia::test {

// Stands where the connected_socket_adapter would: its outbox feeds the
// handler, its inbox collects what the handler writes.
struct fake_socket : component {
    std::string written;
    std::vector<ipc> controls;
    bool closed = false;
    task main() override {
        for (;;) {
            while (auto s = recv<std::string>()) written += *s;
            while (auto c = recv<ipc>("control")) {
                controls.push_back(*c);
                if (c->ends()) {
                    while (auto s = recv<std::string>()) written += *s;
                    closed = true;
                    co_return;
                }
            }
            co_await wait_any();
        }
    }
};

struct embedded_connection {
    fixture& f;
    std::unique_ptr<component> handler;
    fake_socket sock;

    embedded_connection(fixture& fx, std::unique_ptr<component> h) : f(fx), handler(std::move(h)) {
        component::link({sock, "outbox"}, {*handler, "inbox"});
        component::link({*handler, "outbox"}, {sock, "inbox"});
        component::link({*handler, "signal"}, {sock, "control"});
        component::link({sock, "signal"}, {*handler, "control"});
        handler->activate(f.sched);
        sock.activate(f.sched);
        f.settle();
    }
    ~embedded_connection() {
        handler.reset();
        f.settle();
    }
    // The client sends bytes.
    void write(std::string bytes) {
        deliver(*handler, "inbox", message(std::move(bytes)));
        f.settle();
    }
    // Everything the server wrote since the last call.
    std::string read() { return std::exchange(sock.written, std::string()); }
    // The client half-closes.
    void close_input() {
        deliver(*handler, "control", message(producer_finished("peer closed")));
        f.settle();
    }
};

} // namespace kamaelia::test
