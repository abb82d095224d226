// The greylisting proxy's per-connection graph: what server_core's protocol
// factory returns for each SMTP client.
//
//   graphline({self.inbox → FRAMING.inbox, self.control → FRAMING.control,
//              FRAMING.outbox → SESSION.inbox, FRAMING.signal → SESSION.control,
//              SESSION.framing → FRAMING.reframe,
//              SESSION.outbox → self.outbox, SESSION.signal → self.signal},
//             FRAMING = framer, SESSION = session)
//
// The framer (framer.hpp) turns the client's bytes into lines and passes
// the socket's and the server's control messages on behind them, in order;
// the session (session.hpp) answers the lines. The session's end reaches
// the socket adapter through the graphline's signal, and its reframe{end}
// ends the framer, so the graph ends with the session.
#pragma once

#include <kamaelia/core/component.hpp>
#include <kamaelia/net/connection_info.hpp>
#include <kamaelia/smtp/proxy.hpp>

#include <memory>

namespace kamaelia::smtp {

std::unique_ptr<component> protocol(const std::shared_ptr<proxy_context>& ctx, const connection_info& peer);

} // namespace kamaelia::smtp
