// The greylisting proxy's per-connection graph: what server_core's protocol
// factory returns for each SMTP client.
//
//   graphline({self.inbox → FRAMING.inbox, self.control → FRAMING.control,
//              FRAMING.outbox → ENVELOPE.inbox, FRAMING.signal → ENVELOPE.control,
//              ENVELOPE.framing → FRAMING.reframe,
//              ENVELOPE.relay → RELAY.inbox, ENVELOPE.relay_ctl → RELAY.control,
//              RELAY.outbox → ENVELOPE.relay_in, RELAY.signal → ENVELOPE.relay_in,
//              ENVELOPE.outbox → self.outbox, ENVELOPE.signal → self.signal},
//             FRAMING = framer, ENVELOPE = session, RELAY = relay)
//
// The framer (framer.hpp) turns the client's bytes into lines and passes
// the socket's and the server's control messages on behind them, in order;
// ENVELOPE (session.hpp) answers the lines and hands each mail transaction
// to RELAY (relay.hpp), which holds the UPSTREAM client as its child
// (upstream_client.hpp, opened at the first DATA, reused between messages)
// and answers with the upstream's replies (transaction.hpp's messages).
// ENVELOPE's end ends RELAY (the upstream QUIT), then reaches the socket
// adapter through the graphline's signal; its reframe{end} ends the framer,
// so the graph ends with the session.
#pragma once

#include <kamaelia/core/component.hpp>
#include <kamaelia/net/connection_info.hpp>
#include <kamaelia/smtp/proxy.hpp>

#include <memory>

namespace kamaelia::smtp {

std::unique_ptr<component> protocol(const std::shared_ptr<proxy_context>& ctx, const connection_info& peer);
// The same graph with another RELAY stage (tests: a fake that answers by
// hand); null: smtp::relay.
std::unique_ptr<component> protocol(const std::shared_ptr<proxy_context>& ctx, const connection_info& peer,
                                    std::unique_ptr<component> relay_stage);

} // namespace kamaelia::smtp
