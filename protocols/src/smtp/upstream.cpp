// The RELAY stage's side of its upstream client (upstream_client.hpp, a
// child holding the connection: a tcp_client, or what
// proxy_context::make_upstream makes): the greeting and EHLO, the replies
// awaited under the upstream's timeouts, and QUIT when the connection ends.
#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/net/tcp_client.hpp>
#include <kamaelia/smtp/relay.hpp>
#include <kamaelia/smtp/upstream_client.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

namespace kamaelia::smtp {

void relay::drop_upstream(std::string why) {
    if (!up_) return;
    spdlog::debug("grey: session {}: upstream dropped: {}", session_, why);
    remove_child(*up_); // stops it if it still runs: the socket closes, a half-sent message is discarded
    up_ = nullptr;
    up_replies_.clear();
    body_head_.clear();
    up_ext_ = {};
    up_lost_ = false;
    up_lost_why_.clear();
    up_timed_out_ = false;
    while (recv_message("up_in")) {}
}

void relay::upstream_lost(std::string why) {
    if (up_lost_) return; // the first reason is the one worth logging
    up_lost_ = true;
    up_lost_why_ = std::move(why);
}

bool relay::take_upstream_input() {
    auto m = recv_message("up_in");
    if (!m) return false;
    if (const ipc* c = m->peek<ipc>())
        upstream_lost(c->text.empty() ? std::string(to_string(c->kind)) : c->text);
    else if (m->peek<reply>())
        up_replies_.push_back(m->take<reply>());
    return true;
}

bool relay::drain_upstream_idle() {
    // Between transactions the upstream should say nothing; a 421 or a close
    // means the connection is over. Returns false if it was dropped.
    while (take_upstream_input()) {
        for (const auto& r : up_replies_)
            if (r.code == 421) upstream_lost("upstream: " + r.text());
        up_replies_.clear();
    }
    if (up_ && up_lost_) {
        drop_upstream(up_lost_why_);
        return false;
    }
    return up_ != nullptr;
}

subtask<std::optional<reply>> relay::upstream_reply(duration timeout) {
    time_point deadline = sched()->now() + timeout;
    if (up_deadline_) deadline = std::min(deadline, *up_deadline_);
    for (;;) {
        if (!up_replies_.empty()) {
            reply r = std::move(up_replies_.front());
            up_replies_.pop_front();
            co_return r;
        }
        if (up_lost_) co_return std::nullopt;
        if (take_upstream_input()) continue;
        // The client waits on us: its idle timer does not run, a stop's deadline does.
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

subtask<std::optional<reply>> relay::open_upstream() {
    // nullopt: ready; a reply: what to tell the client instead.
    const auto& cfg = ctx_->cfg;
    if (up_) drain_upstream_idle();
    if (up_) co_return std::nullopt;
    if (ctx_->health.down(sched()->now()))
        co_return reply{451, {"4.4.1 Upstream mail server unavailable, please try again later"}};
    std::unique_ptr<component> c;
    if (ctx_->make_upstream)
        c = ctx_->make_upstream();
    else
        c = std::make_unique<tcp_client>(cfg.upstream_host, cfg.upstream_port, cfg.upstream_connect_timeout);
    up_ = &add_child(std::make_unique<upstream_client>(std::move(c)));
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
            if (!sent2 || !helo || helo->code != 250) why = helo ? "HELO refused: " + helo->text() : up_lost_why_;
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

subtask<void> relay::close_upstream() {
    if (!up_) co_return;
    if (drain_upstream_idle()) {
        bool sent = co_await send(std::string("QUIT\r\n"), "up_out");
        if (sent) (void)try_send(producer_finished("session over"), "up_stop");
        // Let it flush QUIT (bounded): its end message arrives in up_in.
        const time_point deadline = sched()->now() + std::chrono::seconds(5);
        while (sent && up_ && !up_lost_ && !up_->finished() && sched()->now() < deadline) {
            co_await wait_for("up_in", deadline - sched()->now());
            while (take_upstream_input()) {}
        }
    }
    drop_upstream("session over");
}

} // namespace kamaelia::smtp
