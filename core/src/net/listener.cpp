#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/net/listener.hpp>
#include <kamaelia/util/log_limiter.hpp>

#include "listen.hpp"

#include <asio/local/stream_protocol.hpp>
#include <spdlog/spdlog.h>

#include <sys/stat.h>

#include <filesystem>
#include <system_error>

namespace kamaelia {

namespace {
constexpr auto accept_backoff = std::chrono::milliseconds(100);
}

std::string listen_address::text() const {
    if (is_unix()) return "unix:" + unix_path;
    asio::error_code ec;
    auto a = asio::ip::make_address(bind_address, ec);
    if (ec) return bind_address + ":" + std::to_string(port);
    return detail::endpoint_text(asio::ip::tcp::endpoint(a, port));
}

listener::listener(listen_address where, csa_options options, std::shared_ptr<tls_context> tls)
    : where_(std::move(where)),
      bound_(where_),
      options_(options),
      tls_(std::move(tls)),
      anchor_(*this) {
    declare_outbox("protocolHandlerSignal", "a new_connection per accepted socket");
}

listener::~listener() {
    anchor_.clear();
    teardown_now(); // the frame goes before the acceptor its handlers use
    close_listener();
}

void listener::listen(asio::io_context* on) {
    if (acceptor_) return;
    asio::io_context& io = on ? *on : sched() ? sched()->io() : scheduler::default_scheduler().io();
    if (where_.is_unix()) {
        acceptor_ = detail::open_unix_acceptor(io, name_for_logs, where_.unix_path, backlog);
        owns_path_ = true;
    } else {
        acceptor_ = detail::open_acceptor(io, name_for_logs, where_.bind_address, where_.port, reuse_address, backlog,
                                          reuse_port);
        bound_.port = bound_port();
    }
    backoff_ = std::make_unique<log_limiter>(name_for_logs + ": accept failed, pausing accepts",
                                             std::chrono::seconds(60), nullptr, spdlog::level::warn);
}

bool listener::listening() const noexcept { return acceptor_ && acceptor_->is_open(); }

std::uint16_t listener::bound_port() const {
    if (!acceptor_) throw bad_state(name_for_logs + " is not listening");
    if (where_.is_unix()) return 0;
    return detail::tcp_endpoint(acceptor_->local_endpoint()).port();
}

void listener::close_listener() noexcept {
    asio::error_code ec;
    if (acceptor_) acceptor_->close(ec);
    if (owns_path_) {
        std::error_code fec;
        std::filesystem::remove(where_.unix_path, fec);
        owns_path_ = false;
    }
}

void listener::arm_wait() {
    if (armed_ || !acceptor_) return;
    armed_ = true;
    acceptor_->async_wait(asio::socket_base::wait_read, [t = anchor_.token(), this](const asio::error_code& ec) {
        if (!*t) return;
        armed_ = false;
        if (!ec) readable_ = true;
        io_anchor::signal(t);
    });
}

bool listener::accept_one(new_connection& out) {
    asio::error_code ec;
    // On the io_context's own executor: see connected_socket_adapter::socket_type.
    connected_socket_adapter::socket_type s = acceptor_->accept(sched()->io().get_executor(), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
        readable_ = false;
        return false;
    }
    if (ec) {
        if (detail::accept_should_back_off(ec)) {
            // Out of descriptors: pause instead of spinning on accept.
            ++failures_;
            backoff_->fail(ec.message(), sched()->now());
            paused_until_ = sched()->now() + accept_backoff;
            return false;
        }
        // ECONNABORTED and the like: that one connection is gone; go on.
        if (ec != asio::error::operation_aborted) spdlog::debug("{}: accept failed: {}", name_for_logs, ec.message());
        return true;
    }
    backoff_->ok(sched()->now());
    ++accepted_;
    out.info = detail::describe(s, where_);
    out.info.id = accepted_;
    if (!where_.is_unix()) {
        if (tcp_nodelay) s.set_option(asio::ip::tcp::no_delay(true), ec);
        if (keepalive) s.set_option(asio::socket_base::keep_alive(true), ec);
    }
    out.csa = std::make_unique<connected_socket_adapter>(std::move(s), options_, start_tls{tls_, true, {}});
    return true;
}

task listener::main() {
    listen();
    for (;;) {
        if (shutdown_requested()) break;
        if (paused_until_ && sched()->now() >= *paused_until_) {
            paused_until_.reset();
            readable_ = true;
        }
        bool more = false; // the batch ran out, not the queue
        if (!paused_until_) {
            std::size_t n = 0;
            while (readable_ && !paused_until_) {
                if (n++ == accept_batch) {
                    more = true;
                    break;
                }
                new_connection c;
                if (!accept_one(c)) break;
                if (!c.csa) continue;
                // Flow control: while the receiver is full, nothing more is accepted.
                co_await send(std::move(c), "protocolHandlerSignal");
            }
            if (!readable_ && !paused_until_) arm_wait();
        }
        if (more) {
            co_await yield();
            continue;
        }
        std::optional<duration> limit;
        if (paused_until_) limit = *paused_until_ - sched()->now();
        co_await wait(ev_external | ev_control, limit);
    }
    anchor_.clear();
    close_listener();
    forward_shutdown();
}

} // namespace kamaelia
