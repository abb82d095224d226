// The ENVELOPE stage of an SMTP client connection's graphline
// (smtp/protocol.hpp builds the graph): the client's side of the dialogue.
//
//   inbox     framed_line from the framer   outbox     replies to the client
//             (and its `reframed` mark)                (and start_tls)
//   control   the socket's end messages,    signal     producer_finished when the
//             shutdown_microprocess when               session is over (the socket
//             the server stops (passed on              adapter flushes and closes)
//             by the framer, in order)      framing    reframe orders to the framer
//   relay_in  relay_reply from RELAY, and   relay      transaction, body_bytes,
//             its end                                  body_end, body_abort to RELAY
//                                           relay_ctl  relay_stop, then the end, to RELAY
//
// It takes one line at a time, which keeps replies in the order of the
// commands however many were pipelined: HELO/EHLO, MAIL and RCPT under the
// envelope's rules (envelope.hpp), asking the greylist service at RCPT
// (`co_await ask(...)`: the lines behind it wait in the inbox); RSET, NOOP,
// VRFY, EXPN, HELP, QUIT; STARTTLS; the error limit. It applies the line
// limit in force (512 octets for a command line, 1000 for a text line, RFC
// 5321) and the DATA line rules (message_body.hpp: bare CR/LF, size).
//
// At DATA it hands the envelope to RELAY (relay.hpp, a `transaction`) and
// waits for its relay_reply: 354 only when RELAY says the upstream said
// 354, else RELAY's answer. The message's bytes go to RELAY as they come,
// the final dot as body_end, answered with the upstream's own reply; a
// refused message (smuggling, size, line length) or a client gone
// mid-DATA is a body_abort, so the upstream delivers nothing. Each
// transaction ends with one log line (the envelope's), whatever RELAY said.
//
// While it waits on RELAY its idle timer does not run (RELAY's upstream
// timeouts govern: 451 4.4.1). A stop lets a message in flight finish
// within its grace (the deadline is passed to RELAY as relay_stop), then
// says 421 4.3.2 -- the transaction logged either way, never a bare close.
// STARTTLS (offered when the context has a TLS context) sends
// kamaelia::start_tls out of "outbox" to the socket adapter after the 220
// (which marks the byte stream with tls_started; the framer answers with
// `reframed`), and drops every line up to the framer's `reframed` mark:
// they were read in clear.
#pragma once

#include <kamaelia/core/component.hpp>
#include <kamaelia/net/connection_info.hpp>
#include <kamaelia/protocols/line_session.hpp>
#include <kamaelia/smtp/command.hpp>
#include <kamaelia/smtp/envelope.hpp>
#include <kamaelia/smtp/framer.hpp>
#include <kamaelia/smtp/message_body.hpp>
#include <kamaelia/smtp/proxy.hpp>
#include <kamaelia/smtp/reply.hpp>
#include <kamaelia/smtp/transaction.hpp>

#include <memory>
#include <optional>
#include <string>

namespace kamaelia::smtp {

class session : public line_session {
public:
    session(std::shared_ptr<proxy_context> ctx, connection_info peer);
    ~session() override;
    std::string type_name() const override { return "smtp::session"; }
    // The connection's number (log lines, the Received: id).
    std::uint64_t number() const noexcept { return env_.session(); }

protected:
    task main() override;

private:
    // ---- the conversation (session.cpp) -------------------------------------
    subtask<void> handle_command(std::string_view line);
    subtask<void> handle_rcpt(const command& c); // the envelope's rules, then the greylist's
    subtask<void> starttls();
    subtask<void> flush();
    void say(int code, std::string_view text);
    void say(const answer& a);
    void count_error();
    void read_control(); // the socket's end messages and the server's stop
    bool stopping() const noexcept { return stop_seen(); }
    bool client_eof() const noexcept { return seen(ipc_kind::producer_finished); } // answer what it sent, then end
    bool client_gone() const noexcept { return socket_closed() || seen(ipc_kind::protocol_error); }
    bool stop_due() const; // a stop's grace for a message in flight has run out
    void reset_transaction(outcome r, std::string detail = {});
    // Handles one line from the framer (or its mark); the stages may suspend.
    subtask<void> take_line(const message& m);
    std::size_t line_limit() const noexcept {
        return body_.active() ? ctx_->cfg.max_text_line : ctx_->cfg.max_command_line;
    }

    // ---- DATA, through RELAY -------------------------------------------------
    subtask<void> handle_data();
    subtask<void> finish_message();
    subtask<void> send_body();        // what the body holds for the upstream
    void abort_body(std::string why); // RELAY drops the message (no delivery)
    // RELAY's answer; nullopt when RELAY has ended. The stop is passed on meanwhile.
    subtask<std::optional<relay_reply>> await_relay();
    void take_relay_reply(relay_reply r, bool at_dot); // what the client hears, the transaction ended
    void stop_mid_transaction();                       // 421 4.3.2, the transaction logged, the session ends
    subtask<void> end_relay();                         // RELAY QUITs the upstream and ends (bounded)

    static constexpr std::size_t upstream_chunk = 64 * 1024; // body bytes gathered before a write upstream
    static constexpr int lines_per_round = 64;               // lines answered between looks at control

    std::shared_ptr<proxy_context> ctx_;
    connection_info peer_;
    envelope env_;
    message_body body_;
    bool tls_ = false;       // STARTTLS done
    bool reframing_ = false; // after STARTTLS, until the framer's mark: lines read in clear
    unsigned errors_ = 0;
    bool done_ = false;
    std::optional<time_point> stop_at_; // a stop's grace ends: 421 4.3.2 even mid-DATA from then on

    bool relay_gone_ = false; // RELAY has ended
};

} // namespace kamaelia::smtp
