#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/net/server_core.hpp>
#include <kamaelia/util/log_limiter.hpp>

#include "listen.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

#include <system_error>

namespace kamaelia {

namespace {

// Inactivity deadlines are checked to within a tick: coarse on purpose (a
// 300 s timeout closing up to 1 s late costs nothing), finer for the short
// timeouts tests use.
duration wheel_tick(const std::optional<duration>& timeout) {
    duration tick = std::chrono::seconds(1);
    if (timeout) tick = std::clamp<duration>(*timeout / 4, std::chrono::milliseconds(10), tick);
    return tick;
}

} // namespace

bool connection_caps::try_open(const std::string& peer, bool unix_socket, std::size_t max_total,
                               std::size_t max_per_address) {
    std::lock_guard lock(m_);
    if (open_ >= max_total) return false;
    if (max_per_address && !unix_socket) {
        auto it = per_address_.find(peer);
        if (it != per_address_.end() && it->second >= max_per_address) return false;
        ++per_address_[peer];
    }
    ++open_;
    return true;
}

void connection_caps::close(const std::string& peer, bool unix_socket) noexcept {
    std::lock_guard lock(m_);
    if (open_) --open_;
    if (unix_socket) return;
    auto it = per_address_.find(peer);
    if (it != per_address_.end() && --it->second == 0) per_address_.erase(it);
}

std::size_t connection_caps::open() const {
    std::lock_guard lock(m_);
    return open_;
}

server_core::server_core() { declare_inbox("_newconnection", "new_connection messages from the listener"); }

server_core::~server_core() {
    teardown_now(); // connection graphs and the frame go before the listener
}

void server_core::listen() {
    if (listener_ || own_listener_) return;
    listen_address where =
        unix_path.empty() ? listen_address::tcp(bind_address, port) : listen_address::unix_socket(unix_path);
    auto l = std::make_unique<listener>(std::move(where), socket_options, tls);
    l->name_for_logs = server_name;
    l->reuse_address = reuse_address;
    l->reuse_port = reuse_port;
    l->tcp_nodelay = tcp_nodelay;
    l->keepalive = keepalive;
    l->backlog = backlog;
    l->listen(sched() ? &sched()->io() : nullptr);
    own_listener_ = std::move(l);
    if (on_listening) on_listening(own_listener_->address());
}

bool server_core::listening() const noexcept {
    const listener* l = listener_ ? listener_ : own_listener_.get();
    return l && l->listening();
}

std::string server_core::address_text() const {
    const listener* l = listener_ ? listener_ : own_listener_.get();
    if (!l) throw bad_state(server_name + " is not listening");
    return l->address().text();
}

asio::ip::tcp::endpoint server_core::local_endpoint() const {
    const listener* l = listener_ ? listener_ : own_listener_.get();
    if (!l || l->address().is_unix()) throw bad_state(server_name + " is not listening on TCP");
    asio::error_code ec;
    auto a = asio::ip::make_address(l->address().bind_address, ec);
    return asio::ip::tcp::endpoint(a, l->address().port);
}

std::uint16_t server_core::bound_port() const {
    const listener* l = listener_ ? listener_ : own_listener_.get();
    if (!l) throw bad_state(server_name + " is not listening");
    return l->address().port;
}

void server_core::open_connection(new_connection nc) {
    ++accepted_;
    connection_info& info = nc.info;
    if (shared_caps) info.id = shared_caps->next_id();
    bool unix_socket = listener_->address().is_unix();
    bool refuse = shared_caps ? !shared_caps->try_open(info.peer, unix_socket, max_connections, max_per_address)
                              : conns_.size() >= max_connections ||
                                    (max_per_address && !unix_socket && per_address_[info.peer] >= max_per_address);
    if (refuse) {
        ++refused_;
        std::size_t open = shared_caps ? shared_caps->open() : conns_.size();
        // A flood of refusals is one condition, not a line each.
        refusing_->fail(info.name() + ", " + std::to_string(open) + " connections open", sched()->now());
        return; // the adapter's destructor closes the socket
    }
    refusing_->ok(sched()->now());

    std::unique_ptr<component> handler;
    try {
        handler = protocol(info);
    } catch (const std::exception& e) {
        spdlog::error("{}: protocol factory failed for {}: {}", server_name, info.name(), e.what());
        if (shared_caps) shared_caps->close(info.peer, unix_socket);
        return;
    }
    auto& csa = add_child(std::move(nc.csa));
    component& h = add_child(std::move(handler));
    link({csa, "outbox"}, {h, "inbox"});
    link({h, "outbox"}, {csa, "inbox"});
    link({h, "signal"}, {csa, "control"});
    link({csa, "signal"}, {h, "control"});
    if (h.has_box("serversignal") && h.find_box("serversignal").is_outbox())
        link({h, "serversignal"}, {*this, "control"});
    if (!unix_socket) ++per_address_[info.peer];
    // At debug: the close line says who, how long and how much; a health
    // probe (connect, close, not a byte) then stays out of the info log.
    spdlog::debug("{}: connection {} from {}{}{}", server_name, info.id, info.name(), shard_name.empty() ? "" : " on ",
                  shard_name);
    time_point now = sched()->now();
    std::uint64_t id = info.id;
    if (inactivity_timeout) deadlines_.schedule(id, now + *inactivity_timeout);
    conns_.emplace(id, conn{&csa, &h, std::move(info), now});
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
            bool probe = c.csa->bytes_in() == 0 && c.csa->bytes_out() == 0 && c.csa->close_reason() == "peer closed";
            spdlog::log(probe ? spdlog::level::debug : spdlog::level::info,
                        "{}: connection {} from {} closed after {:.3f}s ({}, {} bytes in, {} out)", server_name,
                        c.info.id, c.info.name(), secs, c.csa->close_reason(), c.csa->bytes_in(), c.csa->bytes_out());
            auto pa = per_address_.find(c.info.peer);
            if (pa != per_address_.end() && --pa->second == 0) per_address_.erase(pa);
            if (shared_caps) shared_caps->close(c.info.peer, listener_->address().is_unix());
            closed_traffic_.bytes_in += c.csa->bytes_in();
            closed_traffic_.bytes_out += c.csa->bytes_out();
            closed_traffic_.write_calls += c.csa->write_calls();
            closed_traffic_.messages_in += c.csa->sent();
            closed_traffic_.messages_out += c.csa->in("inbox").delivered();
            remove_child(*c.csa);
            remove_child(*c.handler);
            it = conns_.erase(it); // its wheel entry, if any, expires unanswered
        } else {
            if (c.csa->finished() && !c.orphan_watch) {
                // The socket is gone; a handler that ignores socket_shutdown
                // must not leak: it gets the grace period, then is stopped.
                c.orphan_watch = true;
                deadlines_.schedule(it->first, sched()->now() + grace);
            }
            ++it;
        }
    }
}

server_core::traffic server_core::traffic_total() const {
    traffic t = closed_traffic_;
    for (const auto& [_, c] : conns_) {
        t.bytes_in += c.csa->bytes_in();
        t.bytes_out += c.csa->bytes_out();
        t.write_calls += c.csa->write_calls();
        t.messages_in += c.csa->sent();
        t.messages_out += c.csa->in("inbox").delivered();
    }
    return t;
}

void server_core::on_deadline(std::uint64_t id, time_point now) {
    auto it = conns_.find(id);
    if (it == conns_.end()) return; // closed since
    conn& c = it->second;
    if (c.csa->finished()) {
        if (c.handler->finished()) return;
        if (!c.orphan_watch) {
            c.orphan_watch = true;
            deadlines_.schedule(id, now + grace);
        } else if (now - c.csa->last_activity() >= grace) {
            c.handler->stop();
        } else {
            deadlines_.schedule(id, c.csa->last_activity() + grace);
        }
        return;
    }
    if (!inactivity_timeout) return;
    // An adapter that has not run yet has no activity time: count from the
    // accept (else a deadline right after it closes the newcomer).
    time_point last = std::max(c.opened, c.csa->last_activity());
    if (now - last >= *inactivity_timeout) {
        spdlog::info("{}: connection {} from {} idle for too long", server_name, c.info.id, c.info.name());
        deliver(*c.csa, "control", message(shutdown_microprocess("inactivity timeout")));
    } else {
        deadlines_.schedule(id, last + *inactivity_timeout);
    }
}

void server_core::begin_stop() {
    if (stopping_) return;
    stopping_ = true;
    if (listener_ && !listener_->finished())
        deliver(*listener_, "control", message(shutdown_microprocess("server stopping")));
    while (recv_message("_newconnection")) {
        // accepted but not yet wired: their adapters close the sockets
    }
    stop_deadline_ = sched()->now() + grace;
    // Shards: the first says it for the whole server, the others at debug.
    if (shared_caps && !log_listening) {
        spdlog::debug("{}: stopping on {}, {} connection(s) open", server_name, shard_name, conns_.size());
    } else {
        spdlog::info("{}: stopping, {} connection(s) open", server_name,
                     counted_at_stop_ ? open_at_stop_
                     : shared_caps    ? shared_caps->open()
                                      : conns_.size());
    }
    // Tell every graph: the handler finishes (and closes its socket through
    // its signal); the adapter flushes what the handler still sends.
    for (auto& [_, c] : conns_) {
        if (!c.handler->finished()) deliver(*c.handler, "control", message(shutdown_microprocess("server stopping")));
    }
}

void server_core::stop_serving() {
    if (shared_caps && log_listening && !counted_at_stop_) {
        open_at_stop_ = shared_caps->open();
        counted_at_stop_ = true;
    }
    if (state() == component_state::active) {
        deliver(*this, "control", message(server_shutdown("stop_serving")));
    }
}

task server_core::main() {
    if (!protocol) throw bad_state(server_name + ": no protocol factory");
    listen();
    deadlines_ = timer_wheel<std::uint64_t>(wheel_tick(inactivity_timeout));
    refusing_ = std::make_unique<log_limiter>(server_name + ": refusing connections (connection caps reached)",
                                              std::chrono::seconds(60), nullptr, spdlog::level::warn);
    listener_ = &add_child(std::move(own_listener_));
    link({*listener_, "protocolHandlerSignal"}, {*this, "_newconnection"});
    listener_->activate(*sched());
    if (log_listening) spdlog::info("{}: listening on {}", server_name, listener_->address().text());
    for (;;) {
        while (auto m = recv_message("control")) {
            if (const ipc* c = m->peek<ipc>(); c && c->ends()) begin_stop();
        }
        while (auto m = recv_message("inbox")) {
            // "inbox" exists so a server can sit in a pipeline or seq; unused.
        }
        while (!stopping_) {
            auto nc = recv<new_connection>("_newconnection");
            if (!nc) break;
            open_connection(std::move(*nc));
        }
        reap_connections();
        time_point now = sched()->now();
        deadlines_.expire(now, [&](std::uint64_t id) { on_deadline(id, now); });
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
        } else if (listener_->finished()) {
            // The listener cannot end on its own unless it failed: without
            // it the server serves what it has, then stops.
            spdlog::error("{}: the listener ended; stopping", server_name);
            begin_stop();
            continue;
        }
        std::optional<duration> limit;
        if (auto next = deadlines_.next_deadline()) limit = std::max<duration>(*next - now, duration::zero());
        if (stopping_) limit = std::min<duration>(limit.value_or(*stop_deadline_ - now), *stop_deadline_ - now);
        co_await wait(ev_inbox | ev_children | ev_external, limit);
    }
    if (listener_ && !listener_->finished()) listener_->stop();
    spdlog::log(shared_caps && !log_listening ? spdlog::level::debug : spdlog::level::info, "{}: stopped", server_name);
    send_forced(message(producer_finished()), "signal");
}

} // namespace kamaelia
