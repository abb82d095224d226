// What the SMTP connection's ENVELOPE stage (session.hpp) and its RELAY
// stage (relay.hpp) say to each other: typed messages, one concern each.
//
//   ENVELOPE -> RELAY.inbox     transaction (DATA passed our rules: replay it
//                               upstream), then body_bytes..., then body_end
//                               (the final dot) or body_abort (no delivery)
//   ENVELOPE -> RELAY.control   relay_stop (a stop's deadline), then
//                               producer_finished (QUIT the upstream, end)
//   RELAY -> ENVELOPE.relay_in  relay_reply: one per transaction and one per
//                               body_end, never for body_bytes or body_abort
#pragma once

#include <kamaelia/core/clock.hpp>
#include <kamaelia/smtp/reply.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kamaelia::smtp {

// How a transaction ended, as the session log names it.
enum class outcome { abandoned, accepted, deferred, rejected, failed };

// The envelope as the relay needs it, taken when DATA passed our rules.
struct transaction {
    std::string id; // "<session hex>.<transaction>": the Received: id
    std::string helo;
    bool esmtp = false;
    std::string client; // the peer's address (IPv4 form)
    std::uint16_t client_port = 0;
    std::string sender;
    std::optional<std::uint64_t> declared_size;
    bool body_8bit = false;
    std::vector<std::string> recipients; // the accepted ones, in order
    long long delayed = 0;               // the longest greylist delay (X-Greylist:)
};

// The message's bytes for the upstream, in order (still dot-stuffed).
struct body_bytes {
    std::string bytes;
};
// The client's final dot: the last bytes (ending ".\r\n"); answer with the upstream's reply.
struct body_end {
    std::string bytes;
};
// The message will not be delivered (refused, the client left, a stop's
// grace ran out): the upstream connection is dropped mid-DATA.
struct body_abort {
    std::string why;
};
// The server is stopping: waits on the upstream end at `at` (the stop's grace).
struct relay_stop {
    time_point at;
};

// The relay's answer to a transaction or a body_end.
struct relay_reply {
    bool go = false;              // the upstream said 354: the body may follow (the client hears our 354)
    std::string wire;             // else what the client hears, CRLF-ended
    std::optional<outcome> ended; // the transaction is over: logged with `detail`
    std::string detail;
    bool stopped = false; // a stop's grace ran out while waiting on the upstream
};

// The envelope as the upstream gets it, one command a line (CRLF ended):
// XFORWARD first when the upstream offers it (the client's name, address,
// port, protocol and HELO, as far as it lists them), MAIL with SIZE and BODY
// where it takes them, then a RCPT per accepted recipient.
struct upstream_envelope {
    std::vector<std::string> commands;
    bool xforward = false; // the first command is XFORWARD: its reply refuses nothing
};
upstream_envelope relay_commands(const transaction& t, const extensions& ux);

} // namespace kamaelia::smtp
