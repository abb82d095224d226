// One SMTP client connection of the greylisting proxy: the session stage
// of the connection's graphline (smtp/protocol.hpp builds the graph).
//
//   inbox    framed_line from the framer   outbox   replies to the client
//            (and its `reframed` mark)               (and start_tls)
//   control  the socket's end messages,    signal   producer_finished when the
//            shutdown_microprocess when              session is over (the socket
//            the server stops (passed on             adapter flushes and closes)
//            by the framer, in order)      framing  reframe orders to the framer
//
// The session runs its stages in order, one line at a time:
//
//   envelope          HELO, MAIL, RCPT and their rules (envelope.hpp); at
//                     RCPT the session asks the greylist service
//   DATA relay        the message into upstream bytes (message_body.hpp),
//                     answered only after the upstream answered (relay.cpp)
//   upstream client   a child component holding the connection to the
//                     upstream MTA, speaking in replies (upstream_client.hpp);
//                     the session's side of it in upstream.cpp
//
// Command framing is the framer's (framer.hpp), a component ahead of this
// one; the session applies the line limit in force: 512 octets for a
// command line, 1000 for a text line (RFC 5321).
//
// Commands are answered strictly in order (pipelined input is read on while
// a greylist decision is pending; the replies wait). At DATA the session
// opens (or reuses) its connection to the upstream MTA, replays the envelope
// there (XFORWARD first when offered), answers 354 only after the upstream's
// 354, streams the body through unchanged and answers the final dot with the
// upstream's own reply -- 250 only when the upstream said 250. While the
// client waits on the upstream, the upstream timeouts of proxy_settings
// govern (451 4.4.1 when they run out), not the idle timer; a stop lets a
// message in flight finish within its grace, then says 421 4.3.2 -- the
// transaction is logged either way, never a bare close. The upstream
// client (upstream_client.hpp) is a child whose replies and end both
// arrive in "up_in"; "up_out" writes to it and "up_stop" closes it. STARTTLS (offered when the
// context has a TLS context) sends kamaelia::start_tls out of "outbox" to
// the socket adapter after the 220 (which marks the byte stream with
// tls_started; the framer answers with `reframed`), and drops
// every line up to the framer's `reframed` mark: they were read in clear.
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

#include <deque>
#include <memory>
#include <optional>
#include <string>

namespace kamaelia::smtp {

class session : public line_session {
public:
    session(std::shared_ptr<proxy_context> ctx, connection_info peer);
    ~session() override;

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

    // ---- the DATA relay (relay.cpp) -----------------------------------------
    subtask<void> handle_data();
    subtask<void> relay_envelope(); // DATA's upstream part, bounded by up_deadline_
    subtask<void> finish_message();
    subtask<void> send_body();   // what the body holds for the upstream
    void stop_mid_transaction(); // 421 4.3.2, the transaction logged, the session ends

    // ---- the upstream client (upstream.cpp) ---------------------------------
    subtask<std::optional<reply>> upstream_reply(duration timeout);
    subtask<std::optional<reply>> open_upstream();
    subtask<void> close_upstream();
    void drop_upstream(std::string why);
    bool drain_upstream_idle(); // handles what the upstream says between transactions
    bool take_upstream_input(); // one message from up_in: a reply is kept, an end marks it lost
    void upstream_lost(std::string why);

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

    // upstream
    component* up_ = nullptr;
    std::deque<reply> up_replies_; // what the upstream said, not yet taken
    extensions up_ext_;
    bool up_lost_ = false; // the connection went away (found in up_in)
    std::string up_lost_why_;
    bool up_timed_out_ = false;             // ...because it did not answer in time
    bool stop_cut_ = false;                 // a wait on the upstream was cut by the stop's grace
    std::optional<time_point> up_deadline_; // bounds the whole relay from DATA to 354
};

} // namespace kamaelia::smtp
