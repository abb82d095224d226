#include <kamaelia/smtp/upstream_client.hpp>

#include <utility>

namespace kamaelia::smtp {

upstream_client::upstream_client(std::unique_ptr<component> connection) : conn_(std::move(connection)) {
    declare_inbox("from_conn", "bytes and the end message from the connection");
    declare_outbox("to_conn", "bytes for the connection");
    declare_outbox("conn_ctl", "control of the connection");
}

task upstream_client::main() {
    component& conn = add_child(std::move(conn_));
    link({*this, "to_conn"}, {conn, "inbox"});
    link({*this, "conn_ctl"}, {conn, "control"});
    link({conn, "outbox"}, {*this, "from_conn"});
    link({conn, "signal"}, {*this, "from_conn"});
    conn.activate(*sched());
    std::string why;
    while (why.empty()) {
        // What the upstream said: its replies, in order, then how it ended.
        while (why.empty()) {
            auto m = recv_message("from_conn");
            if (!m) break;
            if (const ipc* c = m->peek<ipc>()) {
                why = c->text.empty() ? std::string(to_string(c->kind)) : c->text;
            } else if (const std::string* s = m->peek<std::string>()) {
                reader_.feed(*s);
                while (auto r = reader_.next()) co_await send(std::move(*r));
                if (reader_.failed()) why = "upstream broke the protocol: " + reader_.error();
            }
        }
        if (!why.empty()) break;
        // What the session writes.
        while (auto m = recv_message("inbox")) {
            if (!co_await send_message(std::move(*m), "to_conn")) {
                why = "cannot write to the upstream";
                break;
            }
        }
        while (auto c = recv<ipc>("control")) {
            if (c->stops()) {
                why = "closed by the session";
            } else if (c->finishes()) {
                (void)try_send(std::move(*c), "conn_ctl"); // flush what was written, then close
            }
        }
        if (why.empty()) co_await wait_any();
    }
    remove_child(conn); // stops it if it still runs: the socket closes
    send_forced(message(socket_shutdown(std::move(why))), "signal");
}

} // namespace kamaelia::smtp
