#include <kamaelia/greylist/unix_listener.hpp>

#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/core/service.hpp>
#include <kamaelia/greylist/policy.hpp>

#include <asio/local/stream_protocol.hpp>
#include <asio/write.hpp>
#include <spdlog/spdlog.h>

#include <sys/stat.h>

#include <ctime>
#include <deque>
#include <filesystem>
#include <list>
#include <system_error>

namespace kamaelia::greylist {

namespace {

using unix_socket = asio::local::stream_protocol::socket;

struct session;

// Queries waiting for the listener component to ask the greylist service.
struct ask_queue {
    component* owner = nullptr; // the listener; cleared when it goes
    std::deque<std::pair<std::weak_ptr<session>, policy_query>> items;
    void push(std::weak_ptr<session> s, policy_query q) {
        if (!owner) return;
        items.emplace_back(std::move(s), std::move(q));
        owner->signal_external();
    }
};

struct session : std::enable_shared_from_this<session> {
    unix_socket sock;
    policy_conversation conv;
    std::shared_ptr<ask_queue> asks;
    std::string out;
    char buf[4096];
    bool closed = false;

    session(unix_socket s, std::shared_ptr<ask_queue> a, const reply_style& style, std::size_t max, bool hooks)
        : sock(std::move(s)), conv(style, max, hooks), asks(std::move(a)) {}

    void answered(const policy_query& q, const decision& d) {
        if (closed) return;
        std::string o = conv.answer(d, std::time(nullptr));
        if (spdlog::should_log(spdlog::level::debug)) log_policy_decision(q.req, d, o);
        if (o.empty()) {
            spdlog::debug("policy: unix client: no answer for {} -> {}: {}", q.req.sender, q.req.recipient, d.reason);
            return close();
        }
        write(std::move(o));
    }

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
        case policy_conversation::ask: return asks->push(weak_from_this(), std::move(st.query));
        }
    }
};

// Asks the greylist service for one unix client's query (a child of the listener).
struct unix_asker : component {
    std::string service;
    std::weak_ptr<session> client;
    policy_query q;
    unix_asker(std::string svc, std::weak_ptr<session> c, policy_query query)
        : service(std::move(svc)), client(std::move(c)), q(std::move(query)) {}
    task main() override {
        check question{q.req};
        auto r = co_await ask(service, std::move(question));
        decision d = r ? std::move(*r) : decision{verdict::tempfail, {}, {}, r.error().text};
        if (auto s = client.lock()) s->answered(q, d);
    }
};

} // namespace

struct unix_listener::impl {
    asio::local::stream_protocol::acceptor acceptor;
    std::string service;
    std::shared_ptr<ask_queue> asks = std::make_shared<ask_queue>();
    reply_style style;
    std::size_t max;
    bool hooks;
    std::list<std::weak_ptr<session>> sessions;
    std::shared_ptr<bool> alive = std::make_shared<bool>(true);

    impl(asio::io_context& io, std::string svc, reply_style s, std::size_t m, bool h)
        : acceptor(io), service(std::move(svc)), style(std::move(s)), max(m), hooks(h) {}

    void accept() {
        acceptor.async_accept([this, alive = alive](const asio::error_code& ec, unix_socket s) {
            if (!*alive || ec == asio::error::operation_aborted || !acceptor.is_open()) return;
            if (!ec) {
                auto sess = std::make_shared<session>(std::move(s), asks, style, max, hooks);
                sessions.remove_if([](const std::weak_ptr<session>& w) { return w.expired(); });
                sessions.push_back(sess);
                sess->read();
            }
            accept();
        });
    }
};

unix_listener::unix_listener(scheduler& s, std::string path, std::string service, reply_style style,
                             std::size_t max_request, bool test_hooks)
    : path_(std::move(path)),
      impl_(std::make_unique<impl>(s.io(), std::move(service), std::move(style), max_request, test_hooks)) {
    impl_->asks->owner = this;
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
    impl_->asks->owner = nullptr;
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
    while (!shutdown_requested()) {
        auto& q = impl_->asks->items;
        while (!q.empty()) {
            add_child(unix_asker(impl_->service, std::move(q.front().first), std::move(q.front().second))).activate();
            q.pop_front();
        }
        children_done();
        co_await wait_events(ev_inbox | ev_external | ev_children);
    }
    asio::error_code ec;
    impl_->acceptor.close(ec);
    for (auto& w : impl_->sessions)
        if (auto s = w.lock()) s->close();
    std::error_code fec;
    std::filesystem::remove(path_, fec);
}

} // namespace kamaelia::greylist
