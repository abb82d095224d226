// The UPSTREAM stage of an SMTP connection: the connection to the upstream
// MTA as a component of its own, speaking in replies. It owns the
// connection (a tcp_client, or what proxy_context::make_upstream makes) as
// its child; RELAY (relay.hpp) owns it, opened at DATA and kept between
// messages.
//
//   inbox    bytes for the upstream         outbox  smtp::reply, one per complete
//            (commands, the message)                reply, in order
//   control  producer_finished: the         signal  socket_shutdown(why) once, after
//            connection flushes and                 the replies before it: the
//            closes; a stop: closes now             connection ended, or the upstream
//                                                   broke the protocol; then it ends
//
// RELAY keeps what depends on its own state: the greeting and EHLO,
// the envelope replayed, and the upstream's timeouts (proxy_settings).
#pragma once

#include <kamaelia/core/component.hpp>
#include <kamaelia/smtp/reply.hpp>

#include <memory>
#include <string>

namespace kamaelia::smtp {

class upstream_client : public component {
public:
    explicit upstream_client(std::unique_ptr<component> connection);
    std::string type_name() const override { return "smtp::upstream_client"; }

protected:
    task main() override;

private:
    std::unique_ptr<component> conn_; // until main() adopts it
    reply_reader reader_;
};

} // namespace kamaelia::smtp
