// The RELAY stage of an SMTP connection's graphline (smtp/protocol.hpp):
// the upstream's side of each mail transaction. No client socket: it takes
// typed messages from the ENVELOPE stage (transaction.hpp) and answers
// each transaction and each final dot with one relay_reply.
//
//   inbox    transaction, body_bytes,       outbox  relay_reply, one per
//            body_end, body_abort                    transaction and per body_end
//   control  relay_stop, then               signal  producer_finished once the
//            producer_finished: QUIT the             upstream is closed
//            upstream and end
//
// At a transaction it opens its UPSTREAM child (upstream_client.hpp: the
// connection to the upstream MTA, speaking in replies), or reuses the one it
// holds, replays the envelope there (XFORWARD first when offered, all in one
// write with DATA when the upstream offers PIPELINING) and answers `go` only
// after the upstream's 354; a refusal or a lost upstream is answered with
// what the client must hear and how the transaction ended. The body is
// written upstream as it comes (our Received:/X-Greylist: headers first);
// body_end is answered with the upstream's own reply to the final dot, 250
// only if the upstream said 250. body_abort drops the connection mid-DATA,
// so the upstream delivers nothing.
//
// Waits on the upstream are bounded by proxy_settings' upstream timeouts
// (451 4.4.1 when they run out; the whole relay from DATA to 354 by
// connect + 2 x upstream_timeout) and by a relay_stop's deadline (`stopped`).
// Between transactions a 421 or a close from the upstream drops the
// connection; the next transaction opens a new one. Failures feed the
// proxy's upstream_health (back-off while the upstream is down).
#pragma once

#include <kamaelia/core/component.hpp>
#include <kamaelia/smtp/proxy.hpp>
#include <kamaelia/smtp/reply.hpp>
#include <kamaelia/smtp/transaction.hpp>

#include <deque>
#include <memory>
#include <optional>
#include <string>

namespace kamaelia::smtp {

class relay : public component {
public:
    // `session`: the connection's number, for the debug log.
    relay(std::shared_ptr<proxy_context> ctx, std::uint64_t session);
    ~relay() override;
    std::string type_name() const override { return "smtp::relay"; }

protected:
    task main() override;

private:
    // ---- the transaction (relay.cpp) ----------------------------------------
    subtask<void> take(message m);
    subtask<relay_reply> start(const transaction& t); // the envelope upstream, then DATA
    subtask<relay_reply> finish(std::string last);    // the final dot
    subtask<void> write_body(std::string bytes);
    std::string with_head(std::string bytes); // body_head_ (taken) + bytes
    relay_reply lost_reply(bool in_body);     // the upstream went away or timed out
    void read_control();
    bool stop_due() const;

    // ---- the upstream client (upstream.cpp) ---------------------------------
    subtask<std::optional<reply>> upstream_reply(duration timeout);
    subtask<std::optional<reply>> open_upstream();
    subtask<void> close_upstream();
    void drop_upstream(std::string why);
    bool drain_upstream_idle(); // handles what the upstream says between transactions
    bool take_upstream_input(); // one message from up_in: a reply is kept, an end marks it lost
    void upstream_lost(std::string why);

    std::shared_ptr<proxy_context> ctx_;
    std::uint64_t session_;
    bool in_body_ = false; // between go and body_end/body_abort
    // Our trace headers, written with the client's first body bytes: one
    // write (and one wake-up of the upstream) less a message.
    std::string body_head_;
    bool ending_ = false; // producer_finished seen on control
    std::optional<time_point> stop_at_;

    component* up_ = nullptr;
    std::deque<reply> up_replies_; // what the upstream said, not yet taken
    extensions up_ext_;
    bool up_lost_ = false; // the connection went away (found in up_in)
    std::string up_lost_why_;
    bool up_timed_out_ = false;             // ...because it did not answer in time
    bool stop_cut_ = false;                 // a wait on the upstream was cut by the stop's deadline
    std::optional<time_point> up_deadline_; // bounds the whole relay from DATA to 354
};

} // namespace kamaelia::smtp
