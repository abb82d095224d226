#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/net/multicast_transceiver.hpp>
#include <kamaelia/util/control_watch.hpp>

#include <asio/ip/multicast.hpp>
#include <spdlog/spdlog.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <system_error>

namespace kamaelia {

namespace {

constexpr std::size_t max_mmsg = 64; // datagrams per sendmmsg/recvmmsg call
constexpr int read_rounds = 8;       // recvmmsg calls per wake-up (fairness)
constexpr auto enobufs_retry = std::chrono::milliseconds(1);

asio::ip::address_v4 parse_v4(const std::string& s, const char* what) {
    asio::error_code ec;
    auto a = asio::ip::make_address_v4(s, ec);
    if (ec)
        throw std::system_error(ec, std::string("multicast: bad ") + what + " \"" + s + "\" (want an IPv4 address)");
    return a;
}

[[noreturn]] void fail(const asio::error_code& ec, const std::string& what) {
    throw std::system_error(ec, "multicast: cannot " + what);
}

void set_send_options(asio::ip::udp::socket& s, const multicast_options& o) {
    asio::error_code ec;
    auto iface = parse_v4(o.interface, "interface");
    if (o.ttl < 0 || o.ttl > 255)
        throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                                "multicast: the TTL must be 0..255, not " + std::to_string(o.ttl));
    s.set_option(asio::ip::multicast::outbound_interface(iface), ec);
    if (ec) fail(ec, "send through interface " + o.interface);
    s.set_option(asio::ip::multicast::hops(o.ttl), ec);
    if (ec) fail(ec, "set the multicast TTL");
    s.set_option(asio::ip::multicast::enable_loopback(o.loopback), ec);
    if (ec) fail(ec, "set multicast loopback");
    if (o.send_buffer > 0) s.set_option(asio::socket_base::send_buffer_size(o.send_buffer), ec);
}

void set_receive_options(asio::ip::udp::socket& s, const multicast_options& o) {
    asio::error_code ec;
    s.set_option(asio::socket_base::reuse_address(true), ec);
    if (ec) fail(ec, "set SO_REUSEADDR");
    if (o.receive_buffer > 0) {
        // The kernel caps SO_RCVBUF at rmem_max; a privileged process may go past it.
        int v = o.receive_buffer;
        if (::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof v) != 0)
            s.set_option(asio::socket_base::receive_buffer_size(o.receive_buffer), ec);
    }
}

void join(asio::ip::udp::socket& s, const multicast_options& o) {
    asio::error_code ec;
    auto group = multicast_destination(o).address().to_v4();
    auto iface = parse_v4(o.interface, "interface");
    s.set_option(asio::ip::multicast::join_group(group, iface), ec);
    if (ec) fail(ec, "join " + o.group + " on interface " + o.interface);
}

std::string ep_text(const asio::ip::udp::endpoint& ep) {
    return ep.address().to_string() + ":" + std::to_string(ep.port());
}

} // namespace

asio::ip::udp::endpoint multicast_destination(const multicast_options& o) {
    auto g = parse_v4(o.group, "group");
    if (!g.is_multicast())
        throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                                "multicast: " + o.group + " is not a multicast group (224.0.0.0/4)");
    return {g, o.port};
}

asio::ip::udp::socket open_multicast_sender(asio::io_context& io, const multicast_options& o) {
    asio::ip::udp::socket s(io);
    asio::error_code ec;
    s.open(asio::ip::udp::v4(), ec);
    if (ec) fail(ec, "open a UDP socket");
    set_send_options(s, o);
    asio::ip::udp::endpoint local(parse_v4(o.interface, "interface"), o.local_port);
    s.bind(local, ec);
    if (ec) fail(ec, "bind " + ep_text(local));
    s.non_blocking(true, ec);
    return s;
}

asio::ip::udp::socket open_multicast_receiver(asio::io_context& io, const multicast_options& o) {
    asio::ip::udp::socket s(io);
    asio::error_code ec;
    auto dest = multicast_destination(o);
    s.open(asio::ip::udp::v4(), ec);
    if (ec) fail(ec, "open a UDP socket");
    set_receive_options(s, o);
    // Bound to the group address: datagrams for other groups on this port stay out.
    s.bind(dest, ec);
    if (ec) fail(ec, "bind " + ep_text(dest));
    join(s, o);
    s.non_blocking(true, ec);
    return s;
}

asio::ip::udp::socket open_multicast_transceiver(asio::io_context& io, const multicast_options& o) {
    asio::ip::udp::socket s(io);
    asio::error_code ec;
    s.open(asio::ip::udp::v4(), ec);
    if (ec) fail(ec, "open a UDP socket");
    set_receive_options(s, o);
    set_send_options(s, o);
    asio::ip::udp::endpoint local(asio::ip::address_v4::any(), o.port);
    s.bind(local, ec);
    if (ec) fail(ec, "bind " + ep_text(local));
#ifdef IP_MULTICAST_ALL
    // Bound to the wildcard: hear only the groups this socket joined.
    int off = 0;
    ::setsockopt(s.native_handle(), IPPROTO_IP, IP_MULTICAST_ALL, &off, sizeof off);
#endif
    join(s, o);
    s.non_blocking(true, ec);
    return s;
}

// ---- the component ---------------------------------------------------------------

multicast_transceiver::multicast_transceiver(multicast_options o) : multicast_transceiver(std::move(o), mode::both) {}

multicast_transceiver::multicast_transceiver(multicast_options o, mode m) : opt_(std::move(o)), mode_(m) {
    if (opt_.batch == 0) opt_.batch = 1;
    if (opt_.batch > max_mmsg) opt_.batch = max_mmsg;
}

multicast_transceiver::multicast_transceiver(multicast_transceiver&& o)
    : component(std::move(o)),
      opt_(std::move(o.opt_)),
      mode_(o.mode_),
      socket_(std::move(o.socket_)),
      dest_(o.dest_),
      local_(o.local_) {}

multicast_transceiver::~multicast_transceiver() {
    if (anchor_) anchor_->clear();
    teardown_now(); // the frame goes before the socket it uses
}

void multicast_transceiver::open(scheduler& s) {
    if (socket_) return;
    if (sends()) dest_ = multicast_destination(opt_);
    switch (mode_) {
    case mode::send: socket_.emplace(open_multicast_sender(s.io(), opt_)); break;
    case mode::receive: socket_.emplace(open_multicast_receiver(s.io(), opt_)); break;
    case mode::both: socket_.emplace(open_multicast_transceiver(s.io(), opt_)); break;
    }
    asio::error_code ec;
    local_ = socket_->local_endpoint(ec);
}

void multicast_transceiver::arm_read() {
    if (read_armed_ || readable_) return;
    read_armed_ = true;
    socket_->async_wait(asio::ip::udp::socket::wait_read, [t = anchor_->token(), this](const asio::error_code&) {
        if (!*t) return; // the component is gone: `this` is not touched
        read_armed_ = false;
        readable_ = true;
        io_anchor::signal(t);
    });
}

void multicast_transceiver::arm_write() {
    if (write_armed_) return;
    write_armed_ = true;
    socket_->async_wait(asio::ip::udp::socket::wait_write, [t = anchor_->token(), this](const asio::error_code&) {
        if (!*t) return;
        write_armed_ = false;
        write_blocked_ = false;
        io_anchor::signal(t);
    });
}

bool multicast_transceiver::take_outgoing(message& m) {
    datagram_batch b;
    if (auto* batch = m.peek<datagram_batch>()) {
        if (batch->empty()) return true;
        b = m.take<datagram_batch>();
    } else if (m.holds<std::string>()) {
        b = datagram_batch(m.take<std::string>());
    } else {
        spdlog::warn("{}: dropped a {} (send std::string or datagram_batch)", name(), m.type_name());
        return false;
    }
    queued_bytes_ += b.total_bytes();
    queue_.push_back(std::move(b));
    return true;
}

void multicast_transceiver::flush() {
    std::array<mmsghdr, max_mmsg> msgs;
    std::array<iovec, max_mmsg> iov;
    while (!write_blocked_ && !retry_later_ && head_ < queue_.size()) {
        datagram_batch& b = queue_[head_];
        std::size_t n = std::min(max_mmsg, b.size() - head_index_);
        for (std::size_t i = 0; i < n; ++i) {
            std::string_view d = b[head_index_ + i];
            iov[i].iov_base = const_cast<char*>(d.data());
            iov[i].iov_len = d.size();
            std::memset(&msgs[i], 0, sizeof(mmsghdr));
            msgs[i].msg_hdr.msg_name = dest_.data();
            msgs[i].msg_hdr.msg_namelen = static_cast<socklen_t>(dest_.size());
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        int r = ::sendmmsg(socket_->native_handle(), msgs.data(), static_cast<unsigned>(n), MSG_DONTWAIT);
        std::size_t done = 0;
        if (r < 0) {
            int e = errno;
            if (e == EINTR) continue;
            if (e == EAGAIN || e == EWOULDBLOCK) {
                write_blocked_ = true;
                ++stats_.send_waits;
                arm_write();
                return;
            }
            if (e == ENOBUFS) { // a full device queue: no writability event will tell
                retry_later_ = true;
                ++stats_.send_waits;
                return;
            }
            // This datagram cannot go (too big, no route): say so, go on with the next.
            if (stats_.send_errors++ < 10)
                spdlog::error("{}: sending a {}-byte datagram to {} failed: {}", name(), b[head_index_].size(),
                              ep_text(dest_), std::strerror(e));
            done = 1;
        } else {
            done = static_cast<std::size_t>(r);
            for (std::size_t i = 0; i < done; ++i) stats_.bytes_sent += b[head_index_ + i].size();
            stats_.datagrams_sent += done;
        }
        head_index_ += done;
        if (head_index_ == b.size()) {
            queued_bytes_ -= b.total_bytes();
            b = datagram_batch();
            ++head_;
            head_index_ = 0;
        }
    }
    if (head_ == queue_.size()) {
        queue_.clear();
        head_ = 0;
    }
}

int multicast_transceiver::read_batch(datagram_batch& out) {
    std::size_t n = opt_.batch, cap = opt_.max_datagram;
    if (scratch_.size() < n * cap) scratch_.resize(n * cap);
    std::array<mmsghdr, max_mmsg> msgs;
    std::array<iovec, max_mmsg> iov;
    std::array<sockaddr_storage, max_mmsg> from;
    for (std::size_t i = 0; i < n; ++i) {
        iov[i].iov_base = scratch_.data() + i * cap;
        iov[i].iov_len = cap;
        std::memset(&msgs[i], 0, sizeof(mmsghdr));
        msgs[i].msg_hdr.msg_name = &from[i];
        msgs[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int r;
    do {
        r = ::recvmmsg(socket_->native_handle(), msgs.data(), static_cast<unsigned>(n), MSG_DONTWAIT, nullptr);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        int e = errno;
        if (e == EAGAIN || e == EWOULDBLOCK) return -1;
        if (e == ECONNREFUSED) return 0; // an ICMP error for something we sent: nothing to read
        throw std::system_error(e, std::generic_category(), "multicast: receive failed");
    }
    std::size_t bytes = 0;
    for (int i = 0; i < r; ++i) bytes += msgs[i].msg_len;
    out.reserve(static_cast<std::size_t>(r), bytes);
    for (int i = 0; i < r; ++i) {
        if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
            ++stats_.truncated;
            continue;
        }
        asio::ip::udp::endpoint src;
        std::size_t len = std::min<std::size_t>(msgs[i].msg_hdr.msg_namelen, src.capacity());
        std::memcpy(src.data(), &from[i], len);
        src.resize(len);
        out.add(std::string_view(scratch_.data() + i * cap, msgs[i].msg_len), src);
        ++stats_.datagrams_received;
        stats_.bytes_received += msgs[i].msg_len;
    }
    return r;
}

task multicast_transceiver::main() {
    open(*sched());
    anchor_ = std::make_unique<io_anchor>(*this);
    control_watch cw;
    readable_ = receives(); // data may be there already
    for (;;) {
        cw.poll(*this);
        if (cw.stopping()) break;
        if (sends()) {
            while (queued_bytes_ < opt_.send_queue_limit) {
                std::optional<message> m = recv_message("inbox");
                if (!m) break;
                take_outgoing(*m);
            }
            flush();
            if (cw.finishing() && head_ == queue_.size() && in("inbox").empty()) break;
        } else if (cw.finishing()) {
            // Upstream is done: pass on what already arrived, then end.
            for (int round = 0; receives() && round < read_rounds; ++round) {
                datagram_batch b;
                if (read_batch(b) < 0) break;
                if (!b.empty()) co_await send(std::move(b));
            }
            break;
        }
        if (receives() && readable_) {
            readable_ = false;
            for (int round = 0; round < read_rounds; ++round) {
                datagram_batch b;
                int got = read_batch(b);
                if (got < 0) break;
                if (round == read_rounds - 1) readable_ = true; // more may wait: come back next cycle
                if (b.empty()) continue;
                co_await send(std::move(b));
            }
        }
        if (receives()) arm_read();
        std::uint8_t events = ev_external | ev_control;
        if (sends() && queued_bytes_ < opt_.send_queue_limit) events |= ev_inbox;
        if (readable_) {
            co_await yield();
        } else if (retry_later_) {
            co_await wait(events, enobufs_retry);
            retry_later_ = false;
        } else {
            co_await wait(events);
        }
    }
    anchor_->clear();
    asio::error_code ec;
    socket_->close(ec);
    cw.forward_end(*this);
}

} // namespace kamaelia
