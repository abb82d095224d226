// One SMTP client connection of the greylisting proxy, as a component.
//
//   inbox    bytes from the client        outbox   replies to the client
//   control  the socket's end messages,   signal   producer_finished when the
//            shutdown_microprocess when            session is over (the socket
//            the server stops                      adapter flushes and closes)
//
// Commands are framed with RFC 5321's limits and answered strictly in order
// (pipelined input is read on while a greylist decision is pending; the
// replies wait). RCPT asks the greylist engine per recipient. At DATA the
// session opens (or reuses) its connection to the upstream MTA, replays the
// envelope there (XFORWARD first when offered), answers 354 only after the
// upstream's 354, streams the body through unchanged (still dot-stuffed;
// bare CR or LF rejects the message: SMTP smuggling) and answers the final
// dot with the upstream's own reply -- 250 only when the upstream said 250.
// While the client waits on the upstream, the upstream timeouts of
// proxy_settings govern (451 4.4.1 when they run out), not the idle timer;
// a stop lets a message in flight finish within its grace, then says
// 421 4.3.2 -- the transaction is logged either way, never a bare close.
// The upstream connection is a child whose outbox and signal both arrive
// in "up_in"; "up_out" writes to it and "up_stop" closes it. STARTTLS
// (offered when the context has a TLS context) sends kamaelia::start_tls
// out of "outbox" to the socket adapter after the 220.
#pragma once

#include <kamaelia/core/component.hpp>
#include <kamaelia/greylist/decision.hpp>
#include <kamaelia/net/connection_info.hpp>
#include <kamaelia/smtp/command.hpp>
#include <kamaelia/smtp/line_reader.hpp>
#include <kamaelia/smtp/proxy.hpp>
#include <kamaelia/smtp/reply.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kamaelia::smtp {

class session : public component {
public:
    session(std::shared_ptr<proxy_context> ctx, connection_info peer);
    ~session() override;

protected:
    task main() override;

private:
    enum class result { none, accepted, deferred, rejected, failed };
    struct recipient {
        std::string address;
        bool accepted = false;
        bool greylisted = false;
    };

    subtask<void> handle_command(std::string_view line);
    subtask<void> handle_rcpt(const command& c);
    subtask<void> handle_data();
    subtask<void> relay_envelope(); // DATA's upstream part, bounded by up_deadline_
    subtask<void> finish_message();
    subtask<std::optional<reply>> upstream_reply(duration timeout);
    subtask<std::optional<reply>> open_upstream();
    subtask<void> close_upstream();
    subtask<void> flush();

    void say(int code, std::string_view text);
    void reply_raw(std::string wire) { out_ += wire; }
    void data_line(const line_reader::line& l);
    void poison(int code, std::string text);
    void stop_mid_transaction(); // 421 4.3.2, the transaction logged, the session ends
    void drop_upstream(std::string why);
    void read_control();         // the socket's end messages and the server's stop, into the flags below
    bool stop_due() const;       // a stop's grace for a message in flight has run out
    bool drain_upstream_idle();  // handles what the upstream says between transactions
    bool take_upstream_input();  // one message from up_in: bytes to the reply reader, an end marks it lost
    void upstream_lost(std::string why);
    void reset_transaction(result r, std::string detail = {});
    void log_result(std::string_view sender, std::string_view result_name, std::string_view detail);
    bool client_allowed() const;
    bool domain_allowed(std::string_view address) const;
    bool triple_whitelisted(std::string_view rcpt) const;
    void count_error();
    std::string txn_id() const;

    std::shared_ptr<proxy_context> ctx_;
    connection_info peer_;
    line_reader reader_;
    std::string out_;            // replies not yet written
    std::string helo_;
    bool esmtp_ = false;
    bool tls_ = false;           // STARTTLS done
    bool in_mail_ = false;
    std::string sender_;
    std::optional<std::uint64_t> declared_size_;
    bool body_8bit_ = false;
    std::vector<recipient> rcpts_;
    std::size_t accepted_ = 0;
    std::size_t rcpt_attempts_ = 0; // RCPT commands this session, every outcome
    long long delayed_ = 0;      // longest greylist delay among the accepted recipients
    unsigned errors_ = 0;
    bool logged_ = false;        // a log line was written for this session
    std::uint64_t id_ = 0;
    unsigned txn_ = 0;
    bool done_ = false;
    bool stopping_ = false;      // the server is stopping: 421 once no message is in flight
    std::optional<time_point> stop_at_; // ...and 421 4.3.2 even mid-DATA from then on
    bool client_gone_ = false;   // the socket is closed: nothing can be written
    bool client_eof_ = false;    // the client half-closed: answer what it sent, then end

    // DATA
    bool in_data_ = false;
    bool prev_crlf_ = true;      // the previous data line ended in CRLF
    std::uint64_t body_bytes_ = 0;
    int poison_code_ = 0;        // non-zero: the message is refused at its final dot
    std::string poison_text_;
    std::string up_buf_;         // body bytes not yet sent upstream

    // upstream
    component* up_ = nullptr;
    reply_reader up_reader_;
    extensions up_ext_;
    bool up_lost_ = false;       // the connection went away (found in up_in)
    std::string up_lost_why_;
    bool up_timed_out_ = false;  // ...because it did not answer in time
    bool stop_cut_ = false;      // a wait on the upstream was cut by the stop's grace
    std::optional<time_point> up_deadline_; // bounds the whole relay from DATA to 354
};

} // namespace kamaelia::smtp
