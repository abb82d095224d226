#include <kamaelia/greylist/unix_listener.hpp>

#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/greylist/policy.hpp>

#include <asio/local/stream_protocol.hpp>
#include <asio/write.hpp>
#include <spdlog/spdlog.h>

#include <sys/stat.h>

#include <ctime>
#include <filesystem>
#include <list>
#include <system_error>

namespace kamaelia::greylist {

namespace {

using unix_socket = asio::local::stream_protocol::socket;

struct session : std::enable_shared_from_this<session> {
    unix_socket sock;
    policy_conversation conv;
    std::shared_ptr<engine> eng;
    std::string out;
    char buf[4096];
    bool closed = false;

    session(unix_socket s, std::shared_ptr<engine> e, const reply_style& style, std::size_t max)
        : sock(std::move(s)), conv(style, max), eng(std::move(e)) {}

    void close() {
        if (closed) return;
        closed = true;
        asio::error_code ec;
        sock.close(ec);
    }
    void read() {
        if (closed) return;
        sock.async_read_some(asio::buffer(buf), [self = shared_from_this()](const asio::error_code& ec, std::size_t n) {
            if (ec) return self->close();
            self->conv.feed(std::string_view(self->buf, n));
            self->pump();
        });
    }
    void write(std::string s) {
        out = std::move(s);
        asio::async_write(sock, asio::buffer(out), [self = shared_from_this()](const asio::error_code& ec, std::size_t) {
            if (ec) return self->close();
            self->pump();
        });
    }
    void pump() {
        if (closed) return;
        auto st = conv.next();
        switch (st.what) {
        case policy_conversation::need_input: return read();
        case policy_conversation::close:
            spdlog::warn("policy: unix client: closing: {}", st.text);
            return close();
        case policy_conversation::reply: return write(std::move(st.text));
        case policy_conversation::ask:
            eng->decide(st.query.req, [self = shared_from_this(), q = st.query](decision d) {
                if (self->closed) return;
                std::string o = self->conv.answer(d, std::time(nullptr));
                if (spdlog::should_log(spdlog::level::debug)) log_policy_decision(q.req, d, o);
                if (o.empty()) {
                    spdlog::error("policy: unix client: no answer for {} -> {}: {}", q.req.sender, q.req.recipient,
                                  d.reason);
                    return self->close();
                }
                self->write(std::move(o));
            });
            return;
        }
    }
};

} // namespace

struct unix_listener::impl {
    asio::local::stream_protocol::acceptor acceptor;
    std::shared_ptr<engine> eng;
    reply_style style;
    std::size_t max;
    std::list<std::weak_ptr<session>> sessions;
    std::shared_ptr<bool> alive = std::make_shared<bool>(true);

    impl(asio::io_context& io, std::shared_ptr<engine> e, reply_style s, std::size_t m)
        : acceptor(io), eng(std::move(e)), style(std::move(s)), max(m) {}

    void accept() {
        acceptor.async_accept([this, alive = alive](const asio::error_code& ec, unix_socket s) {
            if (!*alive || ec == asio::error::operation_aborted || !acceptor.is_open()) return;
            if (!ec) {
                auto sess = std::make_shared<session>(std::move(s), eng, style, max);
                sessions.remove_if([](const std::weak_ptr<session>& w) { return w.expired(); });
                sessions.push_back(sess);
                sess->read();
            }
            accept();
        });
    }
};

unix_listener::unix_listener(scheduler& s, std::string path, std::shared_ptr<engine> e, reply_style style,
                             std::size_t max_request)
    : path_(std::move(path)), impl_(std::make_unique<impl>(s.io(), std::move(e), std::move(style), max_request)) {
    namespace fs = std::filesystem;
    std::error_code fec;
    if (fs::is_socket(path_, fec)) {
        // A live server answers a connect; a stale file from a crash does not.
        unix_socket probe(s.io());
        asio::error_code ec;
        probe.connect(asio::local::stream_protocol::endpoint(path_), ec);
        if (!ec) throw std::system_error(std::make_error_code(std::errc::address_in_use), "unix:" + path_);
        fs::remove(path_, fec);
    }
    asio::local::stream_protocol::endpoint ep(path_);
    impl_->acceptor.open(ep.protocol());
    asio::error_code ec;
    impl_->acceptor.bind(ep, ec);
    if (ec) throw std::system_error(ec, "unix:" + path_);
    ::chmod(path_.c_str(), 0666);
    impl_->acceptor.listen(1024, ec);
    if (ec) throw std::system_error(ec, "unix:" + path_);
    spdlog::info("policy: listening on unix:{}", path_);
}

unix_listener::~unix_listener() {
    *impl_->alive = false;
    asio::error_code ec;
    impl_->acceptor.close(ec);
    for (auto& w : impl_->sessions)
        if (auto s = w.lock()) s->close();
}

std::size_t unix_listener::sessions() const noexcept {
    std::size_t n = 0;
    for (auto& w : impl_->sessions) n += !w.expired();
    return n;
}

task unix_listener::main() {
    impl_->accept();
    while (!shutdown_requested()) co_await wait_any();
    asio::error_code ec;
    impl_->acceptor.close(ec);
    for (auto& w : impl_->sessions)
        if (auto s = w.lock()) s->close();
    std::error_code fec;
    std::filesystem::remove(path_, fec);
}

} // namespace kamaelia::greylist
