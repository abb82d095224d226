// The RELAY stage: the envelope replayed upstream, `go` only after the
// upstream's 354, the body streamed through, the final dot answered with
// the upstream's own reply.
#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/smtp/relay.hpp>
#include <kamaelia/smtp/trace.hpp>

#include <ctime>

namespace kamaelia::smtp {

namespace {

// What we tell the client when the upstream refused something of the envelope.
std::string upstream_refusal(const reply& r) {
    return (r.permanent() ? "554 5.0.0 Upstream refused: " : "451 4.3.0 Upstream refused: ") + std::to_string(r.code) +
           " " + r.text() + "\r\n";
}

relay_reply ended(std::string wire, outcome o, std::string detail) {
    relay_reply r;
    r.wire = std::move(wire);
    r.ended = o;
    r.detail = std::move(detail);
    return r;
}

relay_reply stopped() {
    relay_reply r;
    r.stopped = true;
    return r;
}

} // namespace

relay::relay(std::shared_ptr<proxy_context> ctx, std::uint64_t session) : ctx_(std::move(ctx)), session_(session) {
    declare_inbox("up_in", "replies and the end message from the upstream client");
    declare_outbox("up_out", "bytes to the upstream client");
    declare_outbox("up_stop", "control of the upstream client");
}

relay::~relay() { teardown_now(); }

void relay::read_control() {
    while (auto m = recv_message("control")) {
        if (const relay_stop* s = m->peek<relay_stop>()) {
            if (!stop_at_ || s->at < *stop_at_) stop_at_ = s->at;
        } else if (const ipc* c = m->peek<ipc>()) {
            if (c->ends()) ending_ = true;
        }
    }
}

bool relay::stop_due() const { return stop_at_ && sched()->now() >= *stop_at_; }

relay_reply relay::lost_reply(bool in_body) {
    std::string why = up_lost_why_.empty() ? std::string("connection lost") : up_lost_why_;
    bool timed_out = up_timed_out_;
    drop_upstream(why);
    std::string wire;
    if (timed_out) {
        ctx_->health.failed(sched()->now(), ctx_->cfg);
        wire = in_body ? "451 4.4.1 Upstream did not answer in time, message not delivered; please try again later\r\n"
                       : "451 4.4.1 Upstream did not answer in time, please try again later\r\n";
    } else {
        if (!in_body) ctx_->health.failed(sched()->now(), ctx_->cfg);
        wire = in_body ? "451 4.4.2 Upstream connection lost, message not delivered; please try again later\r\n"
                       : "451 4.4.2 Upstream connection lost, please try again later\r\n";
    }
    return ended(std::move(wire), outcome::failed, (timed_out ? "upstream timeout: " : "upstream lost: ") + why);
}

subtask<relay_reply> relay::start(const transaction& t) {
    up_deadline_ = sched()->now() + ctx_->cfg.upstream_connect_timeout + 2 * ctx_->cfg.upstream_timeout;
    auto refused = co_await open_upstream();
    if (stop_cut_) {
        drop_upstream("server stopping during DATA");
        co_return stopped();
    }
    if (refused) co_return ended(refused->wire(), outcome::failed, "upstream unavailable");
    upstream_envelope u = relay_commands(t, up_ext_);
    const std::size_t expected = u.commands.size();
    const std::size_t xfwd = u.xforward ? 1 : 0;
    std::optional<reply> failure;
    std::optional<reply> go; // the upstream's answer to DATA
    bool lost = false;
    if (up_ext_.pipelining) {
        // DATA goes with the envelope (one round trip). Should a recipient
        // be refused while DATA still got 354, the connection is dropped:
        // without a final dot the upstream delivers nothing.
        std::string env;
        for (const auto& c : u.commands) env += c;
        env += "DATA\r\n";
        bool ok = co_await send(std::move(env), "up_out");
        lost = !ok;
        for (std::size_t i = 0; i <= expected && !lost; ++i) {
            auto r = co_await upstream_reply(ctx_->cfg.upstream_timeout);
            if (!r)
                lost = true;
            else if (i == expected)
                go = std::move(r);
            else if (i >= xfwd && !r->positive() && !failure)
                failure = std::move(r);
        }
        if (!lost && failure && go && go->code == 354) {
            drop_upstream("envelope refused, DATA accepted: aborted");
            go.reset();
        }
    } else {
        for (std::size_t i = 0; i < expected && !lost; ++i) {
            bool ok = co_await send(std::string(u.commands[i]), "up_out");
            auto r = co_await upstream_reply(ctx_->cfg.upstream_timeout);
            if (!ok || !r)
                lost = true;
            else if (i >= xfwd && !r->positive() && !failure)
                failure = *r;
            if (failure && i == xfwd) break; // MAIL refused: no point in RCPTs
        }
        if (!lost && !failure) {
            bool ok = co_await send(std::string("DATA\r\n"), "up_out");
            auto r = co_await upstream_reply(ctx_->cfg.upstream_timeout);
            if (!ok || !r)
                lost = true;
            else
                go = std::move(r);
        }
    }
    up_deadline_.reset();
    if (lost && stop_cut_) {
        drop_upstream("server stopping during DATA");
        co_return stopped();
    }
    if (lost) co_return lost_reply(false);
    if (failure) {
        // Every recipient is delivered or none: the client hears the refusal.
        if (up_) {
            bool sent = co_await send(std::string("RSET\r\n"), "up_out");
            auto r = co_await upstream_reply(ctx_->cfg.upstream_timeout);
            if (!sent || !r || r->code != 250) drop_upstream("RSET failed");
        }
        co_return ended(upstream_refusal(*failure), failure->permanent() ? outcome::rejected : outcome::failed,
                        "upstream: " + failure->text());
    }
    if (!go || go->code != 354) {
        reply g = go ? *go : reply{451, {"4.4.2 no answer to DATA"}};
        co_return ended(upstream_refusal(g), g.permanent() ? outcome::rejected : outcome::failed,
                        "upstream DATA: " + g.text());
    }
    // Our trace headers go first, then the client's bytes.
    trace_info tr;
    tr.helo = t.helo;
    tr.client_ip = t.client;
    tr.by = ctx_->cfg.server_name;
    tr.id = t.id;
    tr.esmtp = t.esmtp;
    if (t.recipients.size() == 1) tr.recipient = t.recipients.front();
    tr.when = ctx_->wall_clock ? ctx_->wall_clock() : std::time(nullptr);
    std::string headers = received_header(tr);
    if (ctx_->cfg.x_greylist_header && t.delayed > 0) headers += x_greylist_header(t.delayed, tr.by, tr.when);
    body_head_ = std::move(headers); // goes out in front of the client's first bytes
    relay_reply r;
    r.go = true;
    co_return r;
}

std::string relay::with_head(std::string bytes) {
    if (body_head_.empty()) return bytes;
    std::string all = std::move(body_head_);
    body_head_.clear();
    all += bytes;
    return all;
}

subtask<void> relay::write_body(std::string bytes) {
    if (!up_ || up_lost_) co_return; // kept: the final dot finds the upstream lost and says so
    bool ok = co_await send(with_head(std::move(bytes)), "up_out");
    if (!ok) upstream_lost("cannot write to the upstream");
}

subtask<relay_reply> relay::finish(std::string last) {
    std::optional<reply> r;
    if (up_ && !up_lost_) {
        bool sent = co_await send(with_head(std::move(last)), "up_out");
        if (sent) r = co_await upstream_reply(ctx_->cfg.upstream_reply_timeout);
    }
    if (!r && stop_cut_) {
        drop_upstream("server stopping during DATA");
        co_return stopped();
    }
    if (!r) co_return lost_reply(true);
    // The client hears the upstream's own answer: 250 only if the upstream took it.
    co_return ended(r->wire(),
                    r->code == 250   ? outcome::accepted
                    : r->permanent() ? outcome::rejected
                                     : outcome::failed,
                    "upstream: " + std::to_string(r->code) + " " + r->text());
}

subtask<void> relay::take(message m) {
    if (const transaction* t = m.peek<transaction>()) {
        relay_reply r = co_await start(*t);
        up_deadline_.reset();
        in_body_ = r.go;
        send_forced(message(std::move(r)), "outbox");
    } else if (m.peek<body_bytes>()) {
        std::string bytes = m.take<body_bytes>().bytes;
        if (in_body_) co_await write_body(std::move(bytes));
    } else if (m.peek<body_end>()) {
        in_body_ = false;
        std::string last = m.take<body_end>().bytes;
        relay_reply r = co_await finish(std::move(last));
        send_forced(message(std::move(r)), "outbox");
    } else if (const body_abort* a = m.peek<body_abort>()) {
        if (in_body_) drop_upstream(a->why);
        in_body_ = false;
        body_head_.clear();
    }
}

task relay::main() {
    for (;;) {
        read_control();
        // The upstream speaking or closing between transactions ends its
        // connection; during DATA it ends the message (found at the final dot).
        if (up_ && !in_body_)
            drain_upstream_idle();
        else if (up_)
            while (take_upstream_input()) {}
        if (auto m = recv_message("inbox")) {
            co_await take(std::move(*m));
            continue;
        }
        if (ending_) break;
        co_await wait_any();
    }
    if (in_body_) drop_upstream("session ended during DATA");
    co_await close_upstream();
    send_forced(message(producer_finished()), "signal");
}

} // namespace kamaelia::smtp
