#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/net/server_core.hpp>

#include "listen.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

#include <system_error>

namespace kamaelia {

namespace {

using detail::endpoint_text;
constexpr auto sweep_interval = std::chrono::seconds(1);
constexpr auto accept_backoff = std::chrono::milliseconds(100);

} // namespace

server_core::server_core() : anchor_(*this) {}

server_core::~server_core() {
    anchor_.clear();
    teardown_now(); // connection graphs and the frame go before the acceptor
    pending_.clear();
    acceptor_.reset();
}

void server_core::listen() {
    if (acceptor_) return;
    asio::io_context& io = sched() ? sched()->io() : scheduler::default_scheduler().io();
    auto acc = detail::open_acceptor(io, server_name, bind_address, port, reuse_address, backlog);
    acceptor_ = std::move(acc);
    if (on_listening) on_listening(acceptor_->local_endpoint());
}

bool server_core::listening() const noexcept { return acceptor_ && acceptor_->is_open(); }

asio::ip::tcp::endpoint server_core::local_endpoint() const {
    if (!acceptor_) throw bad_state(server_name + " is not listening");
    return acceptor_->local_endpoint();
}

std::uint16_t server_core::bound_port() const { return local_endpoint().port(); }

void server_core::start_accept() {
    if (accept_armed_ || stopping_ || !acceptor_) return;
    accept_armed_ = true;
    acceptor_->async_accept([t = anchor_.token(), this](const asio::error_code& ec, asio::ip::tcp::socket s) {
        if (!*t) return;
        accept_armed_ = false;
        if (!ec) {
            pending_.push_back(std::move(s));
        } else if (detail::accept_should_back_off(ec)) {
            // Out of descriptors: back off instead of spinning on accept.
            spdlog::warn("{}: accept failed ({}), pausing accepts", server_name, ec.message());
            accept_paused_until_ = sched()->now() + accept_backoff;
        } else if (ec != asio::error::operation_aborted) {
            spdlog::warn("{}: accept failed: {}", server_name, ec.message());
        }
        io_anchor::signal(t);
    });
}

void server_core::open_connection(asio::ip::tcp::socket s) {
    ++accepted_;
    connection_info info = detail::describe<connection_info>(s);
    asio::error_code ec;
    info.id = ++next_id_;
    if (conns_.size() >= max_connections ||
        (max_per_address && per_address_[info.peer] >= max_per_address)) {
        ++refused_;
        spdlog::warn("{}: refused {} ({} connections open)", server_name, info.name(), conns_.size());
        s.close(ec);
        return;
    }
    if (tcp_nodelay) s.set_option(asio::ip::tcp::no_delay(true), ec);
    if (keepalive) s.set_option(asio::socket_base::keep_alive(true), ec);

    std::unique_ptr<component> handler;
    try {
        handler = protocol(info);
    } catch (const std::exception& e) {
        spdlog::error("{}: protocol factory failed for {}: {}", server_name, info.name(), e.what());
        s.close(ec);
        return;
    }
    auto& csa = add_child(std::make_unique<connected_socket_adapter>(std::move(s), socket_options, start_tls{tls, true, {}}));
    component& h = add_child(std::move(handler));
    link({csa, "outbox"}, {h, "inbox"});
    link({h, "outbox"}, {csa, "inbox"});
    link({h, "signal"}, {csa, "control"});
    link({csa, "signal"}, {h, "control"});
    if (h.has_box("serversignal") && h.find_box("serversignal").is_outbox()) link({h, "serversignal"}, {*this, "control"});
    ++per_address_[info.peer];
    spdlog::info("{}: connection {} from {}", server_name, info.id, info.name());
    conns_.emplace(&csa, conn{&csa, &h, std::move(info), sched()->now()});
    csa.activate(*sched());
    h.activate(*sched());
}

void server_core::reap_connections() {
    // Nothing finished since the last look: no scan (10,000 open connections
    // would otherwise be walked on every accept).
    if (children_finished_count() == reaped_seen_) return;
    reaped_seen_ = children_finished_count();
    // A connection is over when its adapter and its handler have both ended.
    for (auto it = conns_.begin(); it != conns_.end();) {
        conn& c = it->second;
        if (c.csa->finished() && c.handler->finished()) {
            auto secs = std::chrono::duration<double>(sched()->now() - c.opened).count();
            spdlog::info("{}: connection {} from {} closed after {:.3f}s ({}, {} bytes in, {} out)", server_name,
                         c.info.id, c.info.name(), secs, c.csa->close_reason(), c.csa->bytes_in(), c.csa->bytes_out());
            auto pa = per_address_.find(c.info.peer);
            if (pa != per_address_.end() && --pa->second == 0) per_address_.erase(pa);
            closed_traffic_.bytes_in += c.csa->bytes_in();
            closed_traffic_.bytes_out += c.csa->bytes_out();
            closed_traffic_.messages_in += c.csa->sent();
            closed_traffic_.messages_out += c.csa->in("inbox").delivered();
            remove_child(*c.csa);
            remove_child(*c.handler);
            it = conns_.erase(it);
        } else {
            ++it;
        }
    }
}

server_core::traffic server_core::traffic_total() const {
    traffic t = closed_traffic_;
    for (const auto& [_, c] : conns_) {
        t.bytes_in += c.csa->bytes_in();
        t.bytes_out += c.csa->bytes_out();
        t.messages_in += c.csa->sent();
        t.messages_out += c.csa->in("inbox").delivered();
    }
    return t;
}

void server_core::sweep(time_point now) {
    for (auto& [_, c] : conns_) {
        if (c.csa->finished()) {
            // The socket is gone; a handler that ignores socket_shutdown
            // must not leak: give it the grace period, then stop it.
            if (!c.handler->finished() && now - c.csa->last_activity() > grace) c.handler->stop();
            continue;
        }
        // An adapter that has not run yet has no activity time: count from
        // the accept (else a sweep right after it closes the newcomer).
        time_point last = std::max(c.opened, c.csa->last_activity());
        if (inactivity_timeout && now - last >= *inactivity_timeout) {
            spdlog::info("{}: connection {} from {} idle for too long", server_name, c.info.id, c.info.name());
            c.csa->in("control").push_forced(message(shutdown_microprocess("inactivity timeout")));
        }
    }
}

void server_core::begin_stop() {
    if (stopping_) return;
    stopping_ = true;
    asio::error_code ec;
    if (acceptor_) acceptor_->close(ec);
    for (auto& s : pending_) s.close(ec);
    pending_.clear();
    stop_deadline_ = sched()->now() + grace;
    spdlog::info("{}: stopping, {} connection(s) open", server_name, conns_.size());
    // Tell every graph: the handler finishes (and closes its socket through
    // its signal); the adapter flushes what the handler still sends.
    for (auto& [_, c] : conns_) {
        if (!c.handler->finished()) c.handler->in("control").push_forced(message(shutdown_microprocess("server stopping")));
    }
}

void server_core::stop_serving() {
    if (state() == component_state::active) {
        in("control").push_forced(message(server_shutdown("stop_serving")));
    }
}

task server_core::main() {
    if (!protocol) throw bad_state(server_name + ": no protocol factory");
    listen();
    spdlog::info("{}: listening on {}", server_name, endpoint_text(acceptor_->local_endpoint()));
    time_point next_sweep = sched()->now() + sweep_interval;
    for (;;) {
        while (auto m = recv_message("control")) {
            if (const ipc* c = m->peek<ipc>(); c && c->ends()) begin_stop();
        }
        while (auto m = recv_message("inbox")) {
            // "inbox" exists so a server can sit in a pipeline or seq; unused.
        }
        for (auto& s : pending_) {
            if (stopping_) break;
            open_connection(std::move(s));
        }
        pending_.clear();
        reap_connections();
        time_point now = sched()->now();
        if (now >= next_sweep) {
            sweep(now);
            next_sweep = now + sweep_interval;
        }
        if (stopping_) {
            if (conns_.empty()) break;
            if (now >= *stop_deadline_) {
                spdlog::warn("{}: {} connection(s) did not end within the grace period; closing them", server_name,
                             conns_.size());
                for (auto& [_, c] : conns_) {
                    c.csa->stop();
                    c.handler->stop();
                }
                // Stopped components are reaped by the scheduler; then ours.
                co_await yield();
                reap_connections();
                break;
            }
        } else if (accept_paused_until_ && now < *accept_paused_until_) {
            // backing off after EMFILE
        } else {
            accept_paused_until_.reset();
            start_accept();
        }
        duration wait = next_sweep - now;
        if (stopping_) wait = std::min<duration>(wait, *stop_deadline_ - now);
        if (accept_paused_until_) wait = std::min<duration>(wait, *accept_paused_until_ - now);
        co_await wait_events(ev_inbox | ev_children | ev_external, wait);
    }
    asio::error_code ec;
    if (acceptor_) acceptor_->close(ec);
    spdlog::info("{}: stopped", server_name);
    send_forced(message(producer_finished()), "signal");
}

} // namespace kamaelia
