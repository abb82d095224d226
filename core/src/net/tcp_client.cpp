#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/net/tcp_client.hpp>

#include <asio/connect.hpp>

#include <optional>
#include <vector>

namespace kamaelia {

tcp_client::tcp_client(std::string host, std::uint16_t port, duration connect_timeout, csa_options options)
    : host_(std::move(host)),
      port_(port),
      timeout_(connect_timeout),
      options_(options),
      anchor_(*this) {}

tcp_client& tcp_client::tls_with(std::shared_ptr<tls_context> context, std::string server_name) {
    tls_ = start_tls{std::move(context), false, server_name.empty() ? host_ : std::move(server_name)};
    return *this;
}

tcp_client::~tcp_client() {
    anchor_.clear();
    teardown_now(); // the frame and the adapter go before the socket objects
    asio::error_code ec;
    if (socket_) socket_->close(ec);
    if (resolver_) resolver_->cancel();
}

std::string tcp_client::target() const {
    return (host_.find(':') != std::string::npos ? "[" + host_ + "]" : host_) + ":" + std::to_string(port_);
}

bool tcp_client::stop_pending() {
    while (!in("control").empty()) {
        const ipc* c = in("control").front().peek<ipc>();
        if (c && c->ends()) return true;
        (void)recv_message("control"); // anything else is not for a socket that does not exist yet
    }
    return false;
}

subtask<bool> tcp_client::wait_op(time_point deadline) {
    while (!op_done_) {
        if (stop_pending()) co_return true;
        auto left = deadline - sched()->now();
        if (left <= duration::zero()) co_return false;
        co_await wait(ev_external | ev_control, left);
    }
    co_return false;
}

task tcp_client::main() {
    asio::io_context& io = sched()->io();
    const time_point deadline = sched()->now() + timeout_;
    std::vector<asio::ip::tcp::endpoint> endpoints;
    asio::error_code ec;
    auto addr = asio::ip::make_address(host_, ec);
    bool stopped = false;
    if (!ec) {
        endpoints.emplace_back(addr, port_);
    } else {
        resolver_ = std::make_unique<asio::ip::tcp::resolver>(io);
        op_done_ = false;
        resolver_->async_resolve(host_, std::to_string(port_),
                                 [t = anchor_.token(), this](const asio::error_code& e, auto results) {
                                     if (!*t) return;
                                     op_done_ = true;
                                     op_ec_ = e;
                                     resolved_ = std::move(results);
                                     io_anchor::signal(t);
                                 });
        bool stop_resolve = co_await wait_op(deadline);
        stopped = stop_resolve;
        if (!op_done_) {
            resolver_->cancel();
            error_ = stopped ? "stopped while resolving " + target() : "timed out resolving " + target();
        } else if (op_ec_) {
            error_ = "cannot resolve " + host_ + ": " + op_ec_.message();
        } else {
            for (const auto& r : resolved_) endpoints.push_back(r.endpoint());
        }
    }
    for (const auto& ep : endpoints) {
        if (!error_.empty()) break;
        socket_ = std::make_unique<socket_type>(io.get_executor());
        op_done_ = false;
        socket_->async_connect(ep, [t = anchor_.token(), this](const asio::error_code& e) {
            if (!*t) return;
            op_done_ = true;
            op_ec_ = e;
            io_anchor::signal(t);
        });
        bool stop_connect = co_await wait_op(deadline);
        stopped = stop_connect;
        if (op_done_ && !op_ec_) break; // connected
        asio::error_code ignore;
        socket_->close(ignore); // a pending connect completes with operation_aborted into a cleared check
        if (!op_done_) {
            error_ = stopped ? "stopped while connecting to " + target() : "connect to " + target() + " timed out";
            // The handler still targets this component: wait for it (it comes at once after close).
            while (!op_done_) co_await wait(ev_external);
            socket_.reset();
            break;
        }
        error_ = "connect to " + target() + " failed: " + op_ec_.message();
        socket_.reset();
    }
    if (endpoints.empty() && error_.empty()) error_ = "cannot resolve " + host_ + ": no addresses";
    if (!socket_) {
        if (error_.empty()) error_ = "connect to " + target() + " failed";
        send_forced(message(socket_shutdown(error_)), "signal");
        co_return;
    }
    socket_type s = std::move(*socket_);
    socket_.reset();
    s.set_option(asio::ip::tcp::no_delay(true), ec);
    auto& csa = add_child(std::make_unique<connected_socket_adapter>(connected_socket_adapter::socket_type(std::move(s)),
                                                                     options_, std::move(tls_)));
    csa_ = &csa;
    // The adapter's boxes become ours: what waits in our inbox and control moves on.
    link({*this, "inbox"}, {csa, "inbox"});
    link({*this, "control"}, {csa, "control"});
    link({csa, "outbox"}, {*this, "outbox"});
    link({csa, "signal"}, {*this, "signal"});
    csa.activate(*sched());
    co_await csa.done();
}

} // namespace kamaelia
