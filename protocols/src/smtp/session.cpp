#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/core/service.hpp>
#include <kamaelia/smtp/session.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>

namespace kamaelia::smtp {

namespace {

// A dual-stack listener ("::") sees IPv4 clients as ::ffff:a.b.c.d: use the
// IPv4 form everywhere (lists, the greylist, logs, headers).
connection_info ipv4_form(connection_info peer) {
    if (peer.peer.rfind("::ffff:", 0) == 0 && peer.peer.find('.') != std::string::npos) peer.peer.erase(0, 7);
    return peer;
}

} // namespace

session::session(std::shared_ptr<proxy_context> ctx, connection_info peer)
    : ctx_(std::move(ctx)),
      peer_(ipv4_form(std::move(peer))),
      env_(*ctx_, peer_.peer, ctx_->next_session.fetch_add(1, std::memory_order_relaxed) + 1),
      body_(ctx_->cfg.max_message_size) {
    declare_inbox("relay_in", "relay_reply from RELAY, and its end");
    declare_outbox("relay", "the transaction and its body to RELAY");
    declare_outbox("relay_ctl", "a stop's deadline, then the session's end, to RELAY");
    declare_outbox("framing", "reframe orders to the framer (STARTTLS, the session's end)");
}

session::~session() { teardown_now(); }

// ---- output and control -------------------------------------------------------

void session::say(int code, std::string_view text) { write(format_reply(code, text)); }

void session::say(const answer& a) {
    say(a.code, a.text);
    if (a.error) count_error();
}

subtask<void> session::flush() {
    if (!output_pending()) co_return;
    bool ok = co_await line_session::flush();
    // A closed socket is found on control and ends the session there (logged as a disconnect).
    if (!ok && !socket_closed()) done_ = true;
}

void session::count_error() {
    if (++errors_ >= ctx_->cfg.max_errors) {
        say(421, "4.7.0 " + ctx_->cfg.server_name + " Error: too many errors");
        done_ = true;
    }
}

void session::read_control() {
    scan_control();
    if (stopping() && !stop_at_) {
        stop_at_ = sched()->now() + ctx_->stop_grace();
        send_forced(message(relay_stop{*stop_at_}), "relay_ctl");
    }
}

bool session::stop_due() const { return stop_at_ && sched()->now() >= *stop_at_; }

void session::reset_transaction(outcome r, std::string detail) {
    env_.end(r, std::move(detail));
    body_.reset();
}

// ---- commands ---------------------------------------------------------------

subtask<void> session::handle_rcpt(const command& c) {
    greylist::request q;
    if (auto now = env_.rcpt(c, q)) {
        say(*now);
        co_return;
    }
    greylist::decision d{greylist::verdict::tempfail, {}, {}, "no greylist"};
    if (!ctx_->greylist.empty()) {
        auto asked = std::chrono::steady_clock::now();
        std::optional<greylist::decision> known;
        if (ctx_->memory) known = ctx_->memory->recall(q);
        if (known) {
            d = std::move(*known); // a pass the database would answer again, writing nothing
        } else {
            // The service answers exactly once; the bound only guards against a wedged store.
            greylist::check question{std::move(q)};
            auto r = co_await ask(ctx_->greylist, std::move(question), within(std::chrono::minutes(2)));
            if (r) {
                d = std::move(*r);
            } else {
                d.reason = r.error().text;
            }
        }
        if (ctx_->meter)
            ctx_->meter->count(d, std::chrono::duration<double>(std::chrono::steady_clock::now() - asked).count());
    }
    say(env_.rcpt_decided(c.address, d));
}

subtask<void> session::starttls() {
    if (!ctx_->tls) {
        say({502, "5.5.1 Error: command not implemented", true});
        co_return;
    }
    if (tls_) {
        say({503, "5.5.1 Error: TLS already active", true});
        co_return;
    }
    // RFC 3207: answer in clear, then TLS; forget everything, including
    // input that came after the command in clear (CVE-2011-0411).
    say(220, "2.0.0 Ready to start TLS");
    co_await flush();
    kamaelia::start_tls upgrade{ctx_->tls, true, std::string()};
    bool sent = co_await send(std::move(upgrade), "outbox");
    if (!sent) {
        done_ = true;
        co_return;
    }
    // Every byte the adapter read before the switch is clear text: the
    // framer drops what it holds at the adapter's tls_started, and the lines
    // up to its `reframed` mark are dropped here.
    reframing_ = true;
    reset_transaction(outcome::abandoned, "STARTTLS");
    env_.forget_hello();
    tls_ = true;
}

subtask<void> session::handle_command(std::string_view line) {
    command c = parse_command(line);
    if (!c.ok()) {
        // HELO/EHLO without a name still resets nothing; MAIL/RCPT syntax: 501.
        auto sp = c.error.find(' ');
        int code = 500;
        std::from_chars(c.error.data(), c.error.data() + 3, code);
        say({code, c.error.substr(sp + 1), true});
        co_return;
    }
    switch (c.what) {
    case verb::ehlo:
    case verb::helo:
        say(env_.hello(c, ctx_->tls && !tls_));
        body_.reset();
        break;
    case verb::mail: say(env_.mail(c)); break;
    case verb::rcpt: co_await handle_rcpt(c); break;
    case verb::data: co_await handle_data(); break;
    case verb::rset:
        reset_transaction(outcome::abandoned, "RSET");
        say(250, "2.0.0 Ok");
        break;
    case verb::noop: say(250, "2.0.0 Ok"); break;
    case verb::vrfy: say(252, "2.0.0 Cannot VRFY user, but will accept message and attempt delivery"); break;
    case verb::expn: say(502, "5.5.1 Error: EXPN not available"); break;
    case verb::help: say(214, "2.0.0 Commands: HELO EHLO MAIL RCPT DATA RSET NOOP VRFY HELP QUIT"); break;
    case verb::quit:
        reset_transaction(outcome::abandoned, "QUIT");
        say(221, "2.0.0 Bye");
        done_ = true;
        break;
    case verb::starttls: co_await starttls(); break;
    default: say({502, "5.5.1 Error: command not implemented", true}); break;
    }
}

// ---- DATA, through RELAY ------------------------------------------------------

subtask<void> session::handle_data() {
    if (auto no = env_.data_refusal()) {
        say(*no);
        co_return;
    }
    co_await flush(); // the envelope's replies go out before we wait on the upstream
    std::optional<relay_reply> r;
    if (!relay_gone_) {
        message t(env_.relayed(peer_.peer_port));
        bool sent = co_await send_message(std::move(t), "relay");
        if (sent) r = co_await await_relay();
    }
    take_relay_reply(r ? std::move(*r) : relay_reply{}, false);
}

subtask<void> session::send_body() {
    if (!body_.pending() || relay_gone_) co_return;
    message b(body_bytes{body_.take_pending()});
    bool sent = co_await send_message(std::move(b), "relay");
    if (!sent) relay_gone_ = true;
}

void session::abort_body(std::string why) {
    if (!relay_gone_) send_forced(message(body_abort{std::move(why)}), "relay");
}

subtask<void> session::finish_message() {
    if (body_.refused()) {
        answer no{body_.refusal_code(), body_.refusal()};
        say(no);
        reset_transaction(outcome::rejected, no.text);
        co_return;
    }
    body_.finish();
    co_await flush(); // a 354 still held goes out before we wait on the upstream
    std::optional<relay_reply> r;
    if (!relay_gone_) {
        message e(body_end{body_.take_pending()});
        bool sent = co_await send_message(std::move(e), "relay");
        if (sent) r = co_await await_relay();
    }
    take_relay_reply(r ? std::move(*r) : relay_reply{}, true);
}

subtask<std::optional<relay_reply>> session::await_relay() {
    for (;;) {
        while (auto m = recv_message("relay_in")) {
            if (m->peek<relay_reply>()) co_return m->take<relay_reply>();
            if (m->peek<ipc>()) relay_gone_ = true;
        }
        if (relay_gone_) co_return std::nullopt;
        // The client waits on the upstream: its idle timer does not run; a
        // stop is passed on to RELAY, whose waits its grace then bounds.
        read_control();
        co_await wait_for("relay_in", std::chrono::seconds(1));
    }
}

void session::take_relay_reply(relay_reply r, bool at_dot) {
    if (r.stopped) {
        stop_mid_transaction();
        return;
    }
    if (r.go) {
        body_.start();
        say(354, "End data with <CR><LF>.<CR><LF>");
        return;
    }
    if (!r.ended) { // RELAY is gone: nothing reached the upstream's end of data
        r.wire = at_dot ? "451 4.4.2 Upstream connection lost, message not delivered; please try again later\r\n"
                        : "451 4.4.2 Upstream connection lost, please try again later\r\n";
        r.ended = outcome::failed;
        r.detail = "upstream lost: relay ended";
    }
    write(r.wire);
    reset_transaction(*r.ended, std::move(r.detail));
}

void session::stop_mid_transaction() {
    // The stop's grace ran out with a message in flight: nothing is
    // delivered (no final dot reaches the upstream), the client hears why.
    abort_body("server stopping during DATA");
    reset_transaction(outcome::failed, "server stopping during DATA");
    say(421, "4.3.2 " + ctx_->cfg.server_name + " Service shutting down, closing transmission channel");
    done_ = true;
}

subtask<void> session::end_relay() {
    send_forced(message(producer_finished("session over")), "relay_ctl");
    // RELAY QUITs the upstream (bounded by its own deadline) and ends; the
    // client's socket closes after that, as a single session did.
    const time_point deadline = sched()->now() + std::chrono::seconds(10);
    while (!relay_gone_ && sched()->now() < deadline) {
        while (auto m = recv_message("relay_in"))
            if (m->peek<ipc>()) relay_gone_ = true;
        if (!relay_gone_) co_await wait_for("relay_in", deadline - sched()->now());
    }
}

// ---- the connection -----------------------------------------------------------

subtask<void> session::take_line(const message& m) {
    if (m.peek<reframed>()) {
        reframing_ = false;
        co_return;
    }
    const framed_line* f = m.peek<framed_line>();
    if (!f || reframing_) co_return; // not a line, or clear text behind STARTTLS
    line_reader::line l = f->view(line_limit());
    if (body_.active()) {
        if (body_.is_end(l)) {
            co_await finish_message();
        } else {
            // The upstream must not get a message we refuse: closing mid-DATA makes it discard it.
            if (body_.take(l)) abort_body("message refused: " + body_.refusal());
            if (body_.pending() >= upstream_chunk) co_await send_body();
        }
        co_return;
    }
    if (l.too_long) {
        say({500, "5.5.2 Error: line too long", true});
        co_return;
    }
    co_await handle_command(l.text);
}

task session::main() {
    const auto& cfg = ctx_->cfg;
    say(220, cfg.server_name + " ESMTP " + cfg.server_id);
    time_point last_input = sched()->now();
    while (!done_) {
        // Control: the socket's end messages, or the server stopping.
        read_control();
        if (client_eof() && !client_gone() && in("inbox").empty()) {
            // Everything it sent has been answered (below, in an earlier round).
            if (body_.active()) abort_body("client closed during DATA");
            reset_transaction(outcome::abandoned, "client disconnected");
            break;
        }
        if (body_.active() && stop_due() && !client_gone()) {
            stop_mid_transaction();
            break;
        }
        if (stopping() && !body_.active()) {
            reset_transaction(outcome::abandoned, "server stopping");
            say(421, "4.3.2 " + cfg.server_name + " Service shutting down, closing transmission channel");
            break;
        }
        if (client_gone()) {
            if (body_.active()) abort_body("client went away during DATA");
            reset_transaction(outcome::abandoned, "client disconnected");
            break;
        }
        // Only RELAY's end arrives here unasked (its replies are awaited).
        while (auto m = recv_message("relay_in"))
            if (m->peek<ipc>()) relay_gone_ = true;
        // Input: the lines waiting, answered in order, a bounded batch per
        // round so that control is read between batches.
        if (!in("inbox").empty()) {
            for (int n = 0; n < lines_per_round && !done_; ++n) {
                auto m = recv_message("inbox");
                if (!m) break;
                last_input = sched()->now();
                co_await take_line(*m);
                if (stopping() && !body_.active()) break;
            }
            // Time spent waiting on the upstream is not the client's idleness.
            last_input = sched()->now();
            if (body_.active() && body_.pending()) co_await send_body();
            co_await flush();
            continue; // more input may be waiting: it is read before sleeping
        }
        co_await flush();
        if (done_) break;
        auto idle = last_input + cfg.idle_timeout - sched()->now();
        if (idle <= duration::zero()) {
            bool in_data = body_.active();
            reset_transaction(outcome::abandoned, "timeout");
            if (in_data) abort_body("client timed out during DATA");
            say(421, "4.4.2 " + cfg.server_name + " Error: timeout exceeded");
            break;
        }
        if (body_.active() && stop_at_) idle = std::min<duration>(idle, *stop_at_ - sched()->now());
        co_await wait(ev_inbox, std::max<duration>(idle, duration::zero()));
    }
    // A session without any mail still gets its line (the original's "None" sender).
    env_.end_session(client_gone() || client_eof() ? "client disconnected" : "session ended");
    if (!client_gone()) co_await flush();
    if (body_.active()) abort_body("session ended during DATA");
    co_await end_relay();
    send_forced(message(reframe{true}), "framing");
    send_forced(message(producer_finished()), "signal");
}

} // namespace kamaelia::smtp
