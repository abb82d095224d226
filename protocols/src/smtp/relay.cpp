// The session's DATA relay: the envelope replayed upstream, 354 only after
// the upstream's 354, the body streamed through, the final dot answered
// with the upstream's own reply.
#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/smtp/session.hpp>
#include <kamaelia/smtp/trace.hpp>

#include <ctime>

namespace kamaelia::smtp {

namespace {

// What we tell the client when the upstream refused something of the envelope.
std::string upstream_refusal(const reply& r) {
    return (r.permanent() ? "554 5.0.0 Upstream refused: " : "451 4.3.0 Upstream refused: ") + std::to_string(r.code) +
           " " + r.text() + "\r\n";
}

} // namespace

subtask<void> session::handle_data() {
    if (auto no = env_.data_refusal()) {
        say(*no);
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
        write(refused->wire());
        reset_transaction(outcome::failed, "upstream unavailable");
        co_return;
    }
    upstream_envelope u = relay_commands(env_, up_ext_, peer_.peer_port);
    const std::size_t expected = u.commands.size();
    const std::size_t xfwd = u.xforward ? 1 : 0;
    std::optional<smtp::reply> failure;
    std::optional<smtp::reply> go; // the upstream's answer to DATA
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
    if (lost && stop_cut_) {
        stop_mid_transaction();
        co_return;
    }
    if (lost) {
        std::string why = up_lost_why_;
        bool timed_out = up_timed_out_;
        drop_upstream(why);
        ctx_->health.failed(sched()->now(), ctx_->cfg);
        if (timed_out)
            say(451, "4.4.1 Upstream did not answer in time, please try again later");
        else
            say(451, "4.4.2 Upstream connection lost, please try again later");
        reset_transaction(outcome::failed, (timed_out ? "upstream timeout: " : "upstream lost: ") + why);
        co_return;
    }
    if (failure) {
        // Every recipient is delivered or none: the client hears the refusal.
        if (up_) {
            bool sent = co_await send(std::string("RSET\r\n"), "up_out");
            auto r = co_await upstream_reply(ctx_->cfg.upstream_timeout);
            if (!sent || !r || r->code != 250) drop_upstream("RSET failed");
        }
        write(upstream_refusal(*failure));
        reset_transaction(failure->permanent() ? outcome::rejected : outcome::failed, "upstream: " + failure->text());
        co_return;
    }
    if (!go || go->code != 354) {
        smtp::reply g = go ? *go : smtp::reply{451, {"4.4.2 no answer to DATA"}};
        write(upstream_refusal(g));
        reset_transaction(g.permanent() ? outcome::rejected : outcome::failed, "upstream DATA: " + g.text());
        co_return;
    }
    // Trace headers first, then the client's bytes.
    trace_info t;
    t.helo = env_.helo();
    t.client_ip = env_.client();
    t.by = ctx_->cfg.server_name;
    t.id = env_.id();
    t.esmtp = env_.esmtp();
    if (env_.accepted() == 1)
        for (const auto& r : env_.recipients())
            if (r.accepted) t.recipient = r.address;
    t.when = ctx_->wall_clock ? ctx_->wall_clock() : std::time(nullptr);
    std::string headers = received_header(t);
    if (ctx_->cfg.x_greylist_header && env_.delayed() > 0) headers += x_greylist_header(env_.delayed(), t.by, t.when);
    body_.start(std::move(headers));
    say(354, "End data with <CR><LF>.<CR><LF>");
}

subtask<void> session::send_body() {
    if (!up_ || up_lost_) co_return; // kept: the final dot finds the upstream lost and says so
    std::string bytes = body_.take_pending();
    bool ok = co_await send(std::move(bytes), "up_out");
    if (!ok) upstream_lost("cannot write to the upstream");
}

void session::stop_mid_transaction() {
    // The stop's grace ran out with a message in flight: nothing is
    // delivered (no final dot reaches the upstream), the client hears why.
    drop_upstream("server stopping during DATA");
    reset_transaction(outcome::failed, "server stopping during DATA");
    say(421, "4.3.2 " + ctx_->cfg.server_name + " Service shutting down, closing transmission channel");
    done_ = true;
}

subtask<void> session::finish_message() {
    if (body_.refused()) {
        answer no{body_.refusal_code(), body_.refusal()};
        say(no);
        reset_transaction(outcome::rejected, no.text);
        co_return;
    }
    body_.finish();
    std::string chunk = body_.take_pending();
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
        reset_transaction(outcome::failed, (timed_out ? "upstream timeout: " : "upstream lost: ") + why);
        co_return;
    }
    // The client hears the upstream's own answer: 250 only if the upstream took it.
    write(r->wire());
    reset_transaction(r->code == 250   ? outcome::accepted
                      : r->permanent() ? outcome::rejected
                                       : outcome::failed,
                      "upstream: " + std::to_string(r->code) + " " + r->text());
}

} // namespace kamaelia::smtp
