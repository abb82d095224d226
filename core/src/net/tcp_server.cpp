#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/net/tcp_server.hpp>

#include "listen.hpp"

#include <spdlog/spdlog.h>

namespace kamaelia {

namespace {
constexpr auto accept_backoff = std::chrono::milliseconds(100);
}

tcp_server::tcp_server(std::string bind_address, std::uint16_t port, csa_options options,
                       std::shared_ptr<tls_context> tls)
    : bind_address_(std::move(bind_address)), port_(port), options_(options), tls_(std::move(tls)), anchor_(*this) {
    declare_outbox("protocolHandlerSignal", "a new_connection per accepted socket");
}

tcp_server::~tcp_server() {
    anchor_.clear();
    teardown_now(); // the frame goes before the acceptor its handlers use
    pending_.clear();
    acceptor_.reset();
}

void tcp_server::listen() {
    if (acceptor_) return;
    asio::io_context& io = sched() ? sched()->io() : scheduler::default_scheduler().io();
    acceptor_ = detail::open_acceptor(io, "tcp_server", bind_address_, port_, reuse_address, backlog);
}

std::uint16_t tcp_server::bound_port() const {
    if (!acceptor_) throw bad_state("tcp_server is not listening");
    return acceptor_->local_endpoint().port();
}

void tcp_server::arm_accept() {
    if (armed_ || !acceptor_) return;
    armed_ = true;
    acceptor_->async_accept([t = anchor_.token(), this](const asio::error_code& ec, asio::ip::tcp::socket s) {
        if (!*t) return;
        armed_ = false;
        if (!ec) {
            pending_.push_back(std::move(s));
        } else if (detail::accept_should_back_off(ec)) {
            spdlog::warn("tcp_server: accept failed ({}), pausing accepts", ec.message());
            paused_until_ = sched()->now() + accept_backoff;
        } else if (ec != asio::error::operation_aborted) {
            spdlog::warn("tcp_server: accept failed: {}", ec.message());
        }
        io_anchor::signal(t);
    });
}

task tcp_server::main() {
    listen();
    for (;;) {
        if (shutdown_requested()) break;
        std::vector<asio::ip::tcp::socket> ready;
        ready.swap(pending_);
        for (auto& s : ready) {
            ++accepted_;
            new_connection c;
            c.info = detail::describe<connection_info>(s);
            c.info.id = accepted_;
            asio::error_code ec;
            if (tcp_nodelay) s.set_option(asio::ip::tcp::no_delay(true), ec);
            c.csa = std::make_unique<connected_socket_adapter>(std::move(s), options_, start_tls{tls_, true, {}});
            // Flow control: while the receiver is full, nothing more is accepted.
            co_await send(std::move(c), "protocolHandlerSignal");
        }
        std::optional<duration> wait;
        if (paused_until_) {
            if (sched()->now() >= *paused_until_) {
                paused_until_.reset();
            } else {
                wait = *paused_until_ - sched()->now();
            }
        }
        if (!paused_until_) arm_accept();
        co_await wait_events(ev_external | ev_control, wait);
    }
    anchor_.clear();
    asio::error_code ec;
    acceptor_->close(ec);
    forward_shutdown();
}

} // namespace kamaelia
