#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/core/service.hpp>
#include <kamaelia/net/tcp_client.hpp>
#include <kamaelia/smtp/session.hpp>
#include <kamaelia/smtp/trace.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <chrono>

namespace kamaelia::smtp {

namespace {

constexpr std::size_t upstream_chunk = 64 * 1024; // body bytes gathered before a write upstream

// What we tell the client when the upstream refused something of the envelope.
std::string upstream_refusal(const reply& r) {
    return (r.permanent() ? "554 5.0.0 Upstream refused: " : "451 4.3.0 Upstream refused: ") + std::to_string(r.code) +
           " " + r.text() + "\r\n";
}

} // namespace

session::session(std::shared_ptr<proxy_context> ctx, connection_info peer)
    : ctx_(std::move(ctx)), peer_(std::move(peer)), reader_(ctx_->cfg.max_command_line) {
    declare_inbox("up_in", "bytes and end messages from the upstream connection");
    declare_outbox("up_out", "bytes to the upstream connection");
    declare_outbox("up_stop", "control of the upstream connection");
    id_ = ++ctx_->next_session;
    // A dual-stack listener ("::") sees IPv4 clients as ::ffff:a.b.c.d: use
    // the IPv4 form everywhere (lists, the greylist, logs, headers).
    if (peer_.peer.rfind("::ffff:", 0) == 0 && peer_.peer.find('.') != std::string::npos) peer_.peer.erase(0, 7);
}

session::~session() {
    teardown_now();
}

std::string session::txn_id() const {
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, id_, 16);
    return std::string(buf, r.ptr) + "." + std::to_string(txn_);
}

void session::say(int code, std::string_view text) { out_ += format_reply(code, text); }

subtask<void> session::flush() {
    if (out_.empty()) co_return;
    std::string s = std::move(out_);
    out_.clear();
    bool ok = co_await send(std::move(s), "outbox");
    if (!ok) done_ = true; // the socket is gone
}

void session::count_error() {
    if (++errors_ >= ctx_->cfg.max_errors) {
        say(421, "4.7.0 " + ctx_->cfg.server_name + " Error: too many errors");
        done_ = true;
    }
}

bool session::client_allowed() const {
    const auto& c = ctx_->cfg;
    if (std::find(c.allowed_senders.begin(), c.allowed_senders.end(), peer_.peer) != c.allowed_senders.end())
        return true;
    for (const auto& n : c.allowed_sender_nets)
        if (n.contains(peer_.peer)) return true;
    return false;
}

bool session::domain_allowed(std::string_view address) const {
    std::string d = domain_of(address);
    if (d.empty()) return false;
    for (const auto& a : ctx_->cfg.allowed_domains)
        if (a == d) return true;
    return false;
}

bool session::triple_whitelisted(std::string_view rcpt) const {
    std::string r = "<" + std::string(rcpt) + ">";
    std::string s = "<" + sender_ + ">";
    for (const auto& t : ctx_->cfg.whitelisted_triples)
        if (t.ip == peer_.peer && t.sender == s && t.recipient == r) return true;
    for (const auto& t : ctx_->cfg.whitelisted_nonstandard_triples)
        if (t.helo == helo_ && t.client.contains(peer_.peer) && t.recipient == r) return true;
    return false;
}

void session::log_result(std::string_view sender, std::string_view result_name, std::string_view detail) {
    if (!ctx_->log_line) return;
    std::string rc;
    for (const auto& x : rcpts_) {
        if (!rc.empty()) rc += ", ";
        rc += "<" + x.address + ">";
    }
    auto now = std::chrono::system_clock::now();
    std::time_t secs = ctx_->wall_clock ? ctx_->wall_clock() : std::chrono::system_clock::to_time_t(now);
    int ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000);
    ctx_->log_line(log_stamp(secs, ms) + " | " + helo_ + " | " + peer_.peer + " | " + std::string(sender) + " | " + rc +
                   " | " + std::string(result_name) + " | " + std::string(detail));
    logged_ = true;
}

void session::reset_transaction(result r, std::string detail) {
    if (in_mail_) {
        if (r == result::none) {
            bool grey = false, any = false;
            for (const auto& x : rcpts_) {
                grey = grey || x.greylisted;
                any = any || x.accepted;
            }
            r = grey ? result::deferred : rcpts_.empty() || any ? result::none : result::rejected;
            if (detail.empty()) detail = "no DATA";
        }
        static const char* names[] = {"ABANDONED", "ACCEPTED", "DEFERRED", "REJECTED", "FAILED"};
        log_result("<" + sender_ + ">", names[static_cast<int>(r)], detail);
        if (r == result::accepted) ++ctx_->delivered;
        else if (r == result::deferred) ++ctx_->deferred;
        else if (r == result::rejected) ++ctx_->rejected;
    }
    in_mail_ = false;
    sender_.clear();
    declared_size_.reset();
    body_8bit_ = false;
    rcpts_.clear();
    accepted_ = 0;
    delayed_ = 0;
    in_data_ = false;
    poison_code_ = 0;
    poison_text_.clear();
    up_buf_.clear();
    ++txn_;
}

// ---- upstream ------------------------------------------------------------

void session::drop_upstream(std::string why) {
    if (!up_) return;
    spdlog::debug("grey: session {}: upstream dropped: {}", id_, why);
    remove_child(*up_); // stops it if it still runs: the socket closes, a half-sent message is discarded
    up_ = nullptr;
    up_reader_ = reply_reader();
    up_ext_ = {};
    up_lost_ = false;
    up_lost_why_.clear();
    up_timed_out_ = false;
    while (recv_message("up_in")) {
    }
}

void session::upstream_lost(std::string why) {
    if (up_lost_) return; // the first reason is the one worth logging
    up_lost_ = true;
    up_lost_why_ = std::move(why);
}

bool session::take_upstream_input() {
    auto m = recv_message("up_in");
    if (!m) return false;
    if (const ipc* c = m->peek<ipc>()) upstream_lost(c->text.empty() ? std::string(to_string(c->kind)) : c->text);
    else if (const std::string* s = m->peek<std::string>()) up_reader_.feed(*s);
    if (up_reader_.failed()) upstream_lost("upstream broke the protocol: " + up_reader_.error());
    return true;
}

bool session::drain_upstream_idle() {
    // Between transactions the upstream should say nothing; a 421 or a close
    // means the connection is over. Returns false if it was dropped.
    while (take_upstream_input()) {
        while (auto r = up_reader_.next())
            if (r->code == 421) upstream_lost("upstream: " + r->text());
    }
    if (up_ && up_lost_) {
        drop_upstream(up_lost_why_);
        return false;
    }
    return up_ != nullptr;
}

void session::read_control() {
    while (auto m = recv_message("control")) {
        const ipc* c = m->peek<ipc>();
        if (!c) continue;
        if (c->stops()) {
            if (!stopping_) stop_at_ = sched()->now() + ctx_->stop_grace();
            stopping_ = true;
        } else if (c->kind == ipc_kind::producer_finished) client_eof_ = true;
        else if (c->finishes()) client_gone_ = true;
    }
}

bool session::stop_due() const { return stop_at_ && sched()->now() >= *stop_at_; }

subtask<std::optional<reply>> session::upstream_reply(duration timeout) {
    time_point deadline = sched()->now() + timeout;
    if (up_deadline_) deadline = std::min(deadline, *up_deadline_);
    for (;;) {
        if (auto r = up_reader_.next()) co_return r;
        if (up_lost_) co_return std::nullopt;
        if (take_upstream_input()) continue;
        // The client waits on us: its idle timer does not run, a stop's grace does.
        read_control();
        if (stop_due()) {
            stop_cut_ = true;
            upstream_lost("server stopping");
            co_return std::nullopt;
        }
        auto left = deadline - sched()->now();
        if (left <= duration::zero()) {
            upstream_lost("upstream did not answer in time");
            up_timed_out_ = true;
            co_return std::nullopt;
        }
        if (stop_at_) left = std::min<duration>(left, *stop_at_ - sched()->now());
        // Woken at least each second to see a stop arriving on "control".
        co_await wait_for("up_in", std::min<duration>(left, std::chrono::seconds(1)));
    }
}

subtask<std::optional<reply>> session::open_upstream() {
    // nullopt: ready; a reply: what to tell the client instead.
    const auto& cfg = ctx_->cfg;
    if (up_) drain_upstream_idle();
    if (up_) co_return std::nullopt;
    if (ctx_->health.down(sched()->now()))
        co_return reply{451, {"4.4.1 Upstream mail server unavailable, please try again later"}};
    std::unique_ptr<component> c;
    if (ctx_->make_upstream) c = ctx_->make_upstream();
    else c = std::make_unique<tcp_client>(cfg.upstream_host, cfg.upstream_port, cfg.upstream_connect_timeout);
    up_ = &add_child(std::move(c));
    link({*this, "up_out"}, {*up_, "inbox"});
    link({*this, "up_stop"}, {*up_, "control"});
    link({*up_, "outbox"}, {*this, "up_in"});
    link({*up_, "signal"}, {*this, "up_in"});
    up_->activate(*sched());
    std::string why;
    auto greeting = co_await upstream_reply(cfg.upstream_connect_timeout + cfg.upstream_timeout);
    if (!greeting || greeting->code != 220) {
        why = greeting ? "greeting " + std::to_string(greeting->code) + " " + greeting->text() : up_lost_why_;
    } else {
        bool sent = co_await send("EHLO " + cfg.server_name + "\r\n", "up_out");
        auto ehlo = co_await upstream_reply(cfg.upstream_timeout);
        if (sent && ehlo && ehlo->code == 250) {
            up_ext_ = parse_ehlo(*ehlo);
        } else if (sent && ehlo && ehlo->code >= 500) {
            bool sent2 = co_await send("HELO " + cfg.server_name + "\r\n", "up_out");
            auto helo = co_await upstream_reply(cfg.upstream_timeout);
            if (!sent2 || !helo || helo->code != 250)
                why = helo ? "HELO refused: " + helo->text() : up_lost_why_;
        } else {
            why = ehlo ? "EHLO refused: " + ehlo->text() : up_lost_why_;
        }
    }
    if (!why.empty()) {
        spdlog::warn("grey: upstream {}:{} unavailable: {}", cfg.upstream_host, cfg.upstream_port, why);
        ctx_->health.failed(sched()->now(), cfg);
        drop_upstream(why);
        co_return reply{451, {"4.4.1 Upstream mail server unavailable, please try again later"}};
    }
    ctx_->health.ok();
    co_return std::nullopt;
}

subtask<void> session::close_upstream() {
    if (!up_) co_return;
    if (drain_upstream_idle()) {
        bool sent = co_await send(std::string("QUIT\r\n"), "up_out");
        if (sent) (void)try_send(producer_finished("session over"), "up_stop");
        // Let it flush QUIT (bounded): its end message arrives in up_in.
        const time_point deadline = sched()->now() + std::chrono::seconds(5);
        while (sent && up_ && !up_lost_ && !up_->finished() && sched()->now() < deadline) {
            co_await wait_for("up_in", deadline - sched()->now());
            while (take_upstream_input()) {
            }
        }
    }
    drop_upstream("session over");
}

// ---- commands ---------------------------------------------------------------

subtask<void> session::handle_rcpt(const command& c) {
    const auto& cfg = ctx_->cfg;
    // Every attempt counts, deferred ones too: else one pipelined write of
    // RCPTs could add rows to the greylist without bound.
    if (++rcpt_attempts_ > cfg.max_rcpt_attempts) {
        say(452, "4.5.3 Error: too many recipients");
        count_error();
        co_return;
    }
    if (!in_mail_) {
        say(503, "5.5.1 Error: need MAIL command");
        count_error();
        co_return;
    }
    if (!c.params.empty()) {
        say(555, "5.5.4 Unsupported option: " + c.params.front().first);
        count_error();
        co_return;
    }
    if (accepted_ >= cfg.max_recipients) {
        say(452, "4.5.3 Error: too many recipients");
        co_return;
    }
    recipient r{c.address};
    if (is_bare_postmaster(c.address) || client_allowed() || (domain_allowed(c.address) && triple_whitelisted(c.address))) {
        r.accepted = true;
    } else if (!domain_allowed(c.address)) {
        rcpts_.push_back(r);
        say(550, "5.7.1 <" + c.address + ">: Relay access denied");
        count_error();
        co_return;
    } else {
        greylist::request q;
        q.client_address = peer_.peer;
        q.helo = helo_;
        q.sender = sender_;
        q.recipient = c.address;
        q.instance = txn_id();
        greylist::decision d{greylist::verdict::tempfail, {}, {}, "no greylist"};
        if (!ctx_->greylist.empty()) {
            // The service answers exactly once; the bound only guards against a wedged store.
            greylist::check question{std::move(q)};
            auto asked = std::chrono::steady_clock::now();
            auto r = co_await ask(ctx_->greylist, std::move(question), within(std::chrono::minutes(2)));
            if (r) {
                d = std::move(*r);
            } else {
                d.reason = r.error().text;
            }
            if (ctx_->meter)
                ctx_->meter->count(d, std::chrono::duration<double>(std::chrono::steady_clock::now() - asked).count());
        }
        switch (d.what) {
        case greylist::verdict::pass:
        case greylist::verdict::whitelisted:
            r.accepted = true;
            // Like postgrey, X-Greylist: goes on the mail that passed first, not on every later one.
            if (d.first_pass) delayed_ = std::max<long long>(delayed_, d.delayed.count());
            break;
        case greylist::verdict::greylisted:
            r.greylisted = true;
            rcpts_.push_back(r);
            say(451, "4.7.1 <" + c.address + ">: Recipient address rejected: Greylisted, please try again in " +
                           std::to_string(std::max<long long>(d.wait.count(), 1)) + " seconds");
            co_return;
        case greylist::verdict::tempfail:
            rcpts_.push_back(r);
            say(451, "4.3.0 <" + c.address + ">: Temporary failure, please try again later");
            co_return;
        }
    }
    rcpts_.push_back(r);
    ++accepted_;
    say(250, "2.1.5 Ok");
}

subtask<void> session::handle_data() {
    if (!in_mail_) {
        say(503, "5.5.1 Error: need MAIL command");
        count_error();
        co_return;
    }
    if (accepted_ == 0) {
        say(554, "5.5.1 Error: no valid recipients");
        reset_transaction(result::none, "no valid recipients");
        co_return;
    }
    co_await flush(); // the envelope's replies go out before we wait on the upstream
    up_deadline_ = sched()->now() + ctx_->cfg.upstream_connect_timeout + 2 * ctx_->cfg.upstream_timeout;
    co_await relay_envelope();
    up_deadline_.reset();
}

subtask<void> session::relay_envelope() {
    auto refused = co_await open_upstream();
    if (stop_cut_) {
        stop_mid_transaction();
        co_return;
    }
    if (refused) {
        reply_raw(refused->wire());
        reset_transaction(result::failed, "upstream unavailable");
        co_return;
    }
    // The envelope, pipelined when the upstream allows it.
    const auto& ux = up_ext_;
    std::string env;
    std::size_t expected = 0;
    if (ux.xforward) {
        auto has = [&](const char* a) { return std::find(ux.xforward_attrs.begin(), ux.xforward_attrs.end(), a) != ux.xforward_attrs.end(); };
        std::string x = "XFORWARD";
        if (has("NAME")) x += " NAME=[UNAVAILABLE]";
        if (has("ADDR")) x += " ADDR=" + xtext(peer_.peer);
        if (has("PORT")) x += " PORT=" + std::to_string(peer_.peer_port);
        if (has("PROTO")) x += esmtp_ ? " PROTO=ESMTP" : " PROTO=SMTP";
        if (has("HELO")) x += " HELO=" + xtext(helo_);
        env += x + "\r\n";
        ++expected;
    }
    env += "MAIL FROM:<" + sender_ + ">";
    if (declared_size_ && ux.size) env += " SIZE=" + std::to_string(*declared_size_);
    if (body_8bit_ && ux.eightbitmime) env += " BODY=8BITMIME";
    env += "\r\n";
    ++expected;
    std::vector<std::size_t> up_rcpts;
    for (std::size_t i = 0; i < rcpts_.size(); ++i) {
        if (!rcpts_[i].accepted) continue;
        env += "RCPT TO:<" + rcpts_[i].address + ">\r\n";
        ++expected;
        up_rcpts.push_back(i);
    }
    std::optional<smtp::reply> failure;
    std::optional<smtp::reply> go; // the upstream's answer to DATA
    std::size_t xfwd = ux.xforward ? 1 : 0;
    bool lost = false;
    if (ux.pipelining) {
        // DATA goes with the envelope (one round trip). Should a recipient
        // be refused while DATA still got 354, the connection is dropped:
        // without a final dot the upstream delivers nothing.
        env += "DATA\r\n";
        bool ok = co_await send(std::move(env), "up_out");
        lost = !ok;
        for (std::size_t i = 0; i <= expected && !lost; ++i) {
            auto r = co_await upstream_reply(ctx_->cfg.upstream_timeout);
            if (!r) lost = true;
            else if (i == expected) go = std::move(r);
            else if (i >= xfwd && !r->positive() && !failure) failure = std::move(r);
        }
        if (!lost && failure && go && go->code == 354) {
            drop_upstream("envelope refused, DATA accepted: aborted");
            go.reset();
        }
    } else {
        std::size_t p = 0;
        for (std::size_t i = 0; i < expected && !lost; ++i) {
            auto e = env.find("\r\n", p);
            bool ok = co_await send(env.substr(p, e + 2 - p), "up_out");
            p = e + 2;
            auto r = co_await upstream_reply(ctx_->cfg.upstream_timeout);
            if (!ok || !r) lost = true;
            else if (i >= xfwd && !r->positive() && !failure) failure = *r;
            if (failure && i == xfwd) break; // MAIL refused: no point in RCPTs
        }
        if (!lost && !failure) {
            bool ok = co_await send(std::string("DATA\r\n"), "up_out");
            auto r = co_await upstream_reply(ctx_->cfg.upstream_timeout);
            if (!ok || !r) lost = true;
            else go = std::move(r);
        }
    }
    if (lost && stop_cut_) {
        stop_mid_transaction();
        co_return;
    }
    if (lost) {
        std::string why = up_lost_why_;
        bool timed_out = up_timed_out_;
        drop_upstream(why);
        ctx_->health.failed(sched()->now(), ctx_->cfg);
        if (timed_out) say(451, "4.4.1 Upstream did not answer in time, please try again later");
        else say(451, "4.4.2 Upstream connection lost, please try again later");
        reset_transaction(result::failed, (timed_out ? "upstream timeout: " : "upstream lost: ") + why);
        co_return;
    }
    if (failure) {
        // Every recipient is delivered or none: the client hears the refusal.
        if (up_) {
            bool sent = co_await send(std::string("RSET\r\n"), "up_out");
            auto r = co_await upstream_reply(ctx_->cfg.upstream_timeout);
            if (!sent || !r || r->code != 250) drop_upstream("RSET failed");
        }
        reply_raw(upstream_refusal(*failure));
        reset_transaction(failure->permanent() ? result::rejected : result::failed, "upstream: " + failure->text());
        co_return;
    }
    if (!go || go->code != 354) {
        smtp::reply g = go ? *go : smtp::reply{451, {"4.4.2 no answer to DATA"}};
        reply_raw(upstream_refusal(g));
        reset_transaction(g.permanent() ? result::rejected : result::failed, "upstream DATA: " + g.text());
        co_return;
    }
    // Trace headers first, then the client's bytes.
    trace_info t;
    t.helo = helo_;
    t.client_ip = peer_.peer;
    t.by = ctx_->cfg.server_name;
    t.id = txn_id();
    t.esmtp = esmtp_;
    if (accepted_ == 1) t.recipient = rcpts_[up_rcpts.front()].address;
    t.when = ctx_->wall_clock ? ctx_->wall_clock() : std::time(nullptr);
    up_buf_ = received_header(t);
    if (ctx_->cfg.x_greylist_header && delayed_ > 0) up_buf_ += x_greylist_header(delayed_, t.by, t.when);
    in_data_ = true;
    prev_crlf_ = true;
    body_bytes_ = 0;
    poison_code_ = 0;
    reader_.set_limit(ctx_->cfg.max_text_line);
    say(354, "End data with <CR><LF>.<CR><LF>");
}

void session::stop_mid_transaction() {
    // The stop's grace ran out with a message in flight: nothing is
    // delivered (no final dot reaches the upstream), the client hears why.
    drop_upstream("server stopping during DATA");
    reset_transaction(result::failed, "server stopping during DATA");
    reader_.set_limit(ctx_->cfg.max_command_line);
    say(421, "4.3.2 " + ctx_->cfg.server_name + " Service shutting down, closing transmission channel");
    done_ = true;
}

void session::poison(int code, std::string text) {
    if (poison_code_) return;
    poison_code_ = code;
    poison_text_ = std::move(text);
    up_buf_.clear();
    // The upstream must not get a message we refuse: closing mid-DATA makes it discard it.
    drop_upstream("message refused: " + poison_text_);
}

void session::data_line(const line_reader::line& l) {
    if (l.too_long) {
        poison(500, "5.5.2 Error: line too long (over 1000 octets)");
        prev_crlf_ = true; // its ending is unknown; the client's final dot must still end the message
        return;
    }
    if (!l.crlf || l.bare_cr) {
        poison(554, "5.6.11 Error: bare CR or LF in message (SMTP smuggling protection)");
        prev_crlf_ = l.crlf;
        return;
    }
    body_bytes_ += l.text.size() + 2;
    if (body_bytes_ > ctx_->cfg.max_message_size) poison(552, "5.3.4 Error: message size exceeds fixed limit");
    if (!poison_code_) {
        up_buf_.append(l.text);
        up_buf_ += "\r\n";
    }
    prev_crlf_ = true;
}

subtask<void> session::finish_message() {
    in_data_ = false;
    reader_.set_limit(ctx_->cfg.max_command_line);
    if (poison_code_) {
        int code = poison_code_;
        std::string text = poison_text_;
        say(code, text);
        reset_transaction(result::rejected, text);
        co_return;
    }
    up_buf_ += ".\r\n";
    std::string chunk = std::move(up_buf_);
    up_buf_.clear();
    std::optional<smtp::reply> r;
    if (up_ && !up_lost_) {
        bool sent = co_await send(std::move(chunk), "up_out");
        if (sent) {
            auto got = co_await upstream_reply(ctx_->cfg.upstream_reply_timeout);
            r = std::move(got);
        }
    }
    if (!r && stop_cut_) {
        stop_mid_transaction();
        co_return;
    }
    if (!r) {
        std::string why = up_lost_why_.empty() ? std::string("connection lost") : up_lost_why_;
        bool timed_out = up_timed_out_;
        drop_upstream(why);
        if (timed_out) {
            ctx_->health.failed(sched()->now(), ctx_->cfg);
            say(451, "4.4.1 Upstream did not answer in time, message not delivered; please try again later");
        } else {
            say(451, "4.4.2 Upstream connection lost, message not delivered; please try again later");
        }
        reset_transaction(result::failed, (timed_out ? "upstream timeout: " : "upstream lost: ") + why);
        co_return;
    }
    // The client hears the upstream's own answer: 250 only if the upstream took it.
    reply_raw(r->wire());
    reset_transaction(r->code == 250 ? result::accepted : r->permanent() ? result::rejected : result::failed,
                      "upstream: " + std::to_string(r->code) + " " + r->text());
}

subtask<void> session::handle_command(std::string_view line) {
    const auto& cfg = ctx_->cfg;
    command c = parse_command(line);
    if (!c.ok()) {
        // HELO/EHLO without a name still resets nothing; MAIL/RCPT syntax: 501.
        auto sp = c.error.find(' ');
        int code = 500;
        std::from_chars(c.error.data(), c.error.data() + 3, code);
        say(code, c.error.substr(sp + 1));
        count_error();
        co_return;
    }
    switch (c.what) {
    case verb::ehlo:
    case verb::helo: {
        reset_transaction(result::none);
        helo_ = c.argument;
        esmtp_ = c.what == verb::ehlo;
        if (!esmtp_) {
            say(250, cfg.server_name);
            break;
        }
        std::string t = cfg.server_name + "\nPIPELINING\nSIZE " + std::to_string(cfg.max_message_size) +
                        "\n8BITMIME\nENHANCEDSTATUSCODES";
        if (ctx_->tls && !tls_) t += "\nSTARTTLS";
        say(250, t);
        break;
    }
    case verb::mail: {
        if (helo_.empty()) {
            say(503, "5.5.1 Error: send HELO/EHLO first");
            count_error();
            break;
        }
        if (in_mail_) {
            say(503, "5.5.1 Error: nested MAIL command");
            count_error();
            break;
        }
        std::optional<std::uint64_t> size;
        bool eightbit = false;
        std::string bad;
        for (const auto& [k, v] : c.params) {
            if (!esmtp_) {
                bad = "555 5.5.4 Unsupported option: " + k + " (say EHLO for ESMTP)";
            } else if (k == "SIZE") {
                std::uint64_t n = 0;
                auto r = std::from_chars(v.data(), v.data() + v.size(), n);
                if (v.empty() || r.ptr != v.data() + v.size() || r.ec != std::errc()) bad = "501 5.5.4 Bad SIZE value";
                else size = n;
            } else if (k == "BODY") {
                std::string u = v;
                for (char& ch : u) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
                if (u == "8BITMIME") eightbit = true;
                else if (u != "7BIT") bad = "501 5.5.4 Bad BODY value";
            } else {
                bad = "555 5.5.4 Unsupported option: " + k;
            }
            if (!bad.empty()) break;
        }
        if (!bad.empty()) {
            say(std::stoi(bad.substr(0, 3)), bad.substr(4));
            count_error();
            break;
        }
        if (size && cfg.max_message_size && *size > cfg.max_message_size) {
            say(552, "5.3.4 Error: message size exceeds fixed limit");
            break;
        }
        in_mail_ = true;
        sender_ = c.address;
        declared_size_ = size;
        body_8bit_ = eightbit;
        say(250, "2.1.0 Ok");
        break;
    }
    case verb::rcpt:
        co_await handle_rcpt(c);
        break;
    case verb::data:
        co_await handle_data();
        break;
    case verb::rset:
        reset_transaction(result::none, "RSET");
        say(250, "2.0.0 Ok");
        break;
    case verb::noop:
        say(250, "2.0.0 Ok");
        break;
    case verb::vrfy:
        say(252, "2.0.0 Cannot VRFY user, but will accept message and attempt delivery");
        break;
    case verb::expn:
        say(502, "5.5.1 Error: EXPN not available");
        break;
    case verb::help:
        say(214, "2.0.0 Commands: HELO EHLO MAIL RCPT DATA RSET NOOP VRFY HELP QUIT");
        break;
    case verb::quit:
        reset_transaction(result::none, "QUIT");
        say(221, "2.0.0 Bye");
        done_ = true;
        break;
    case verb::starttls: {
        if (!ctx_->tls) {
            say(502, "5.5.1 Error: command not implemented");
            count_error();
            break;
        }
        if (tls_) {
            say(503, "5.5.1 Error: TLS already active");
            count_error();
            break;
        }
        // RFC 3207: answer in clear, then TLS; forget everything, including
        // input that came after the command in clear (CVE-2011-0411).
        say(220, "2.0.0 Ready to start TLS");
        co_await flush();
        kamaelia::start_tls upgrade{ctx_->tls, true, std::string()};
        bool sent = co_await send(std::move(upgrade), "outbox");
        if (!sent) {
            done_ = true;
            break;
        }
        // Every byte the adapter read before the switch is clear text: drop it.
        while (recv_message("inbox")) {
        }
        reader_.clear();
        reset_transaction(result::none, "STARTTLS");
        helo_.clear();
        esmtp_ = false;
        tls_ = true;
        break;
    }
    default:
        say(502, "5.5.1 Error: command not implemented");
        count_error();
        break;
    }
}

// ---- the connection -----------------------------------------------------------

task session::main() {
    const auto& cfg = ctx_->cfg;
    say(220, cfg.server_name + " ESMTP " + cfg.server_id);
    time_point last_input = sched()->now();
    bool& client_gone = client_gone_;
    bool& client_eof = client_eof_;
    while (!done_) {
        // Control: the socket's end messages, or the server stopping.
        read_control();
        if (client_eof && !client_gone && in("inbox").empty()) {
            // Everything it sent has been answered (below, in an earlier round).
            if (in_data_) drop_upstream("client closed during DATA");
            reset_transaction(result::none, "client disconnected");
            break;
        }
        if (in_data_ && stop_due() && !client_gone) {
            stop_mid_transaction();
            break;
        }
        if (stopping_ && !in_data_) {
            reset_transaction(result::none, "server stopping");
            say(421, "4.3.2 " + cfg.server_name + " Service shutting down, closing transmission channel");
            break;
        }
        if (client_gone) {
            if (in_data_) drop_upstream("client went away during DATA");
            reset_transaction(result::none, "client disconnected");
            break;
        }
        if (up_ && !in_data_) drain_upstream_idle();
        else if (up_ && in_data_) {
            // The upstream speaking or closing during DATA ends the message.
            while (take_upstream_input()) {
            }
        }
        // Input: one chunk at a time, every complete line answered in order.
        if (auto chunk = recv<std::string>("inbox")) {
            last_input = sched()->now();
            reader_.feed(*chunk);
            while (!done_) {
                auto l = reader_.next();
                if (!l) break;
                if (in_data_) {
                    if (l->crlf && !l->bare_cr && prev_crlf_ && l->text == ".") {
                        co_await finish_message();
                        if (stopping_ || done_) break;
                    } else {
                        data_line(*l);
                        if (up_buf_.size() >= upstream_chunk && up_ && !up_lost_) {
                            std::string b = std::move(up_buf_);
                            up_buf_.clear();
                            bool ok = co_await send(std::move(b), "up_out");
                            if (!ok) upstream_lost("cannot write to the upstream");
                        }
                    }
                    continue;
                }
                if (l->too_long) {
                    say(500, "5.5.2 Error: line too long");
                    count_error();
                    continue;
                }
                std::string line(l->text);
                co_await handle_command(line);
                if (stopping_ && !in_data_) break;
            }
            // Time spent waiting on the upstream is not the client's idleness.
            last_input = sched()->now();
            if (in_data_ && !up_buf_.empty() && up_ && !up_lost_ && !poison_code_) {
                std::string b = std::move(up_buf_);
                up_buf_.clear();
                bool ok = co_await send(std::move(b), "up_out");
                if (!ok) upstream_lost("cannot write to the upstream");
            }
            co_await flush();
            continue; // more input may be waiting: it is read before sleeping
        }
        co_await flush();
        if (done_) break;
        auto idle = last_input + cfg.idle_timeout - sched()->now();
        if (idle <= duration::zero()) {
            reset_transaction(result::none, "timeout");
            if (in_data_) drop_upstream("client timed out during DATA");
            say(421, "4.4.2 " + cfg.server_name + " Error: timeout exceeded");
            break;
        }
        if (in_data_ && stop_at_) idle = std::min<duration>(idle, *stop_at_ - sched()->now());
        co_await wait_any_for(std::max<duration>(idle, duration::zero()));
    }
    // A session without any mail still gets its line (the original's "None" sender).
    if (!logged_) log_result("None", "NO MAIL", client_gone || client_eof ? "client disconnected" : "session ended");
    if (!client_gone) co_await flush();
    if (in_data_) drop_upstream("session ended during DATA");
    co_await close_upstream();
    send_forced(message(producer_finished()), "signal");
}

} // namespace kamaelia::smtp
