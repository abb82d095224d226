#include <kamaelia/net/connected_socket_adapter.hpp>

#include <asio/post.hpp>
#include <asio/ssl/context.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include <array>
#include <optional>
#include <span>
#include <stdexcept>
#include <utility>

namespace kamaelia {

namespace {
// One read buffer per scheduler thread, shared by all its connections.
thread_local std::array<char, 64 * 1024> read_buffer;

// TLS records carry at most 16 KiB; small queued chunks are joined up to this.
constexpr std::size_t tls_record = 16 * 1024;

// Chunks gathered into one writev.
constexpr std::size_t gather_chunks = 64;

// A payload under join_below bytes (a chat line, a reply) is copied onto the
// end of the chunk queued last while that chunk has room without growing:
// a fan-out's burst of shared lines then leaves in a few iovecs, not one a
// line (64 a writev), and a few dozen bytes cost less to copy than a share
// costs to keep. A small shared payload that finds no room starts a chunk
// of join_reserve bytes: fixed-size blocks the allocator recycles (chunks
// grown by reallocation took fresh heap pages every burst: page faults).
// A small payload of its own is moved in as before; larger shared payloads
// are kept by reference.
constexpr std::size_t join_below = 1024;
constexpr std::size_t join_reserve = 4096;

// Those chunks, once written, wait here for the next burst (per scheduler
// thread, at most join_pool_max of them: 1 MiB). Freed and allocated anew,
// 100 subscribers' chunks made glibc trim and regrow its heap every burst
// (a page fault per fresh page: 3-6 % of the chat's fan-out).
constexpr std::size_t join_pool_max = 256;
thread_local std::vector<std::string> join_pool;

std::string join_chunk() {
    if (join_pool.empty()) {
        std::string c;
        c.reserve(join_reserve);
        return c;
    }
    std::string c = std::move(join_pool.back());
    join_pool.pop_back();
    return c;
}

void recycle(std::string& c) noexcept {
    // Only the pool's own size (a TLS join may have grown it).
    if (c.capacity() != join_reserve || join_pool.size() >= join_pool_max) return;
    c.clear();
    try {
        join_pool.push_back(std::move(c));
    } catch (...) { // no room for the pointer: it is freed instead
    }
}

std::string openssl_error(const char* what) {
    std::string s = what;
    unsigned long e = ERR_get_error();
    if (e == 0) return s;
    std::array<char, 256> buf{};
    ERR_error_string_n(e, buf.data(), buf.size());
    s += ": ";
    s += buf.data();
    ERR_clear_error();
    return s;
}
} // namespace

struct connected_socket_adapter::tls_state {
    enum class phase { pending, handshaking, open } ph = phase::pending;
    start_tls req;
    SSL* ssl = nullptr;
    std::optional<time_point> deadline; // for the handshake
    bool write_retry = false;           // the head chunk must be offered again unchanged
    bool write_wants_read = false;      // SSL_write needs the peer's bytes first
    bool read_wants_write = false;      // SSL_read needs to send first
    ~tls_state() {
        if (ssl) SSL_free(ssl);
    }
};

namespace {
connected_socket_adapter::socket_type on_own_executor(asio::generic::stream_protocol::socket s) {
    // get_executor() returns a copy: keep it alive while target() points into it.
    const auto held = s.get_executor();
    const auto* ex = held.target<asio::io_context::executor_type>();
    if (!ex) throw std::invalid_argument("connected_socket_adapter: the socket must belong to an io_context");
    connected_socket_adapter::socket_type out(*ex);
    if (!s.is_open()) return out;
    asio::error_code ec;
    auto local = s.local_endpoint(ec);
    // getsockname fails only on an unusable socket: any protocol does then,
    // and the first read reports the error.
    auto protocol = ec ? asio::generic::stream_protocol(AF_INET, 0) : local.protocol();
    auto fd = s.release(ec);
    if (!ec) out.assign(protocol, fd, ec);
    return out;
}
} // namespace

connected_socket_adapter::connected_socket_adapter(asio::ip::tcp::socket socket, csa_options options, start_tls tls)
    : connected_socket_adapter(on_own_executor(asio::generic::stream_protocol::socket(std::move(socket))), options,
                               std::move(tls)) {}

connected_socket_adapter::connected_socket_adapter(asio::generic::stream_protocol::socket socket, csa_options options,
                                                   start_tls tls)
    : connected_socket_adapter(on_own_executor(std::move(socket)), options, std::move(tls)) {}

connected_socket_adapter::connected_socket_adapter(socket_type socket, csa_options options, start_tls tls)
    : socket_(std::move(socket)),
      opt_(options),
      anchor_(*this) {
    asio::error_code ec;
    socket_.non_blocking(true, ec);
    if (tls.context) {
        tls_ = std::make_unique<tls_state>();
        tls_->req = std::move(tls);
    }
}

connected_socket_adapter::~connected_socket_adapter() {
    anchor_.clear();
    teardown_now(); // the frame goes before the socket it uses
    // Stopped from outside with output still deferred: what the kernel takes
    // now still goes (as it would have without coalescing).
    if (head_ < queue_.size() && socket_.is_open() && !write_blocked_ && !tls_busy()) flush();
}

bool connected_socket_adapter::tls_established() const noexcept { return tls_ && tls_->ph == tls_state::phase::open; }

bool connected_socket_adapter::tls_busy() const noexcept { return tls_ && tls_->ph != tls_state::phase::open; }

void connected_socket_adapter::close_socket() noexcept {
    anchor_.clear();
    asio::error_code ec;
    if (socket_.is_open()) {
        socket_.shutdown(asio::socket_base::shutdown_both, ec);
        socket_.close(ec);
    }
}

void connected_socket_adapter::arm_read(bool even_if_paused) {
    if (read_armed_ || readable_) return;
    if (!even_if_paused && (read_closed_ || read_paused_)) return;
    read_armed_ = true;
    if (!tls_ && rx_small_) {
        // The reactor reads for us. Asio's async_wait re-arms the descriptor
        // with epoll_ctl(EPOLL_CTL_MOD) every time; a read op keeps the
        // edge-triggered registration made at accept: no syscall to wait, the
        // read done where the readiness is found. (Asio tries a recv at once
        // too: data may be there already.)
        socket_.async_read_some(asio::buffer(rx_buf_), [t = anchor_.token(), this](const asio::error_code& ec,
                                                                                    std::size_t n) {
            if (!*t) return;                                // the adapter is gone: `this` is not touched
            if (ec == asio::error::operation_aborted) return; // cancelled for STARTTLS; nothing was read
            read_armed_ = false;
            if (!ec) {
                rx_got_ = rx_state::data;
                rx_n_ = static_cast<std::uint8_t>(n);
            } else if (ec == asio::error::eof) {
                rx_got_ = rx_state::eof;
            } else {
                rx_got_ = rx_state::error;
                reason_ = "read failed: " + ec.message();
            }
            readable_ = true;
            io_anchor::signal(t);
        });
        return;
    }
    socket_.async_wait(asio::socket_base::wait_read, [t = anchor_.token(), this](const asio::error_code&) {
        if (!*t) return; // the adapter is gone: `this` is not touched
        read_armed_ = false;
        readable_ = true; // on error too: the read reports it
        io_anchor::signal(t);
    });
}

void connected_socket_adapter::arm_write() {
    socket_.async_wait(asio::socket_base::wait_write, [t = anchor_.token(), this](const asio::error_code&) {
        if (!*t) return;
        write_blocked_ = false;
        io_anchor::signal(t);
    });
}

bool connected_socket_adapter::tls_step() {
    if (!tls_ || tls_->ph == tls_state::phase::open) return true;
    if (tls_->ph == tls_state::phase::pending) {
        if (head_ < queue_.size()) return true; // the clear-text reply goes first
        auto* ctx = tls_->req.context->native_handle();
        tls_->ssl = SSL_new(ctx);
        if (!tls_->ssl || SSL_set_fd(tls_->ssl, static_cast<int>(socket_.native_handle())) != 1) {
            reason_ = openssl_error("TLS setup failed");
            return false;
        }
        SSL_set_mode(tls_->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        // A peer that closes without close_notify reads as a plain end of stream.
        SSL_set_options(tls_->ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
        if (tls_->req.server) {
            SSL_set_accept_state(tls_->ssl);
        } else {
            const std::string& host = tls_->req.host;
            asio::error_code ec;
            asio::ip::make_address(host, ec);
            if (!host.empty() && ec) SSL_set_tlsext_host_name(tls_->ssl, host.c_str()); // SNI: names only
            if (!host.empty() && (SSL_CTX_get_verify_mode(ctx) & SSL_VERIFY_PEER))
                SSL_set1_host(tls_->ssl, host.c_str());
            SSL_set_connect_state(tls_->ssl);
        }
        tls_->ph = tls_state::phase::handshaking;
        tls_->deadline = sched()->now() + opt_.close_timeout;
    }
    if (write_blocked_) return true; // wait for the socket first
    ERR_clear_error();
    int r = SSL_do_handshake(tls_->ssl);
    if (r == 1) {
        tls_->ph = tls_state::phase::open;
        tls_->deadline.reset();
        readable_ = true; // application data may have come with the last flight
        return true;
    }
    switch (SSL_get_error(tls_->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        readable_ = false;
        arm_read(true);
        return true;
    case SSL_ERROR_WANT_WRITE:
        write_blocked_ = true;
        arm_write();
        return true;
    default: reason_ = openssl_error("TLS handshake failed"); return false;
    }
}

connected_socket_adapter::io_result connected_socket_adapter::read_some(std::size_t& n) {
    n = 0;
    if (!tls_) {
        asio::error_code ec;
        n = socket_.read_some(asio::buffer(read_buffer.data(), read_buffer.size()), ec);
        if (ec == asio::error::would_block || ec == asio::error::try_again) return io_result::would_block;
        if (ec == asio::error::eof) return io_result::eof;
        if (ec) {
            reason_ = "read failed: " + ec.message();
            return io_result::error;
        }
        return io_result::ok;
    }
    ERR_clear_error();
    int r = SSL_read(tls_->ssl, read_buffer.data(), static_cast<int>(read_buffer.size()));
    if (r > 0) {
        n = static_cast<std::size_t>(r);
        return io_result::ok;
    }
    switch (SSL_get_error(tls_->ssl, r)) {
    case SSL_ERROR_WANT_READ: return io_result::would_block;
    case SSL_ERROR_WANT_WRITE:
        tls_->read_wants_write = true;
        write_blocked_ = true;
        arm_write();
        return io_result::would_block;
    case SSL_ERROR_ZERO_RETURN: return io_result::eof;
    default: reason_ = openssl_error("TLS read failed"); return io_result::error;
    }
}

bool connected_socket_adapter::flush() {
    if (tls_established()) return flush_tls();
    // Plain, or the clear-text part before a STARTTLS handshake.
    while (!write_blocked_ && head_ < queue_.size()) {
        std::array<asio::const_buffer, gather_chunks> bufs;
        std::size_t n = 0;
        for (std::size_t i = head_; i < queue_.size() && n < bufs.size(); ++i, ++n) {
            const out_chunk& s = queue_[i];
            std::size_t off = (i == head_) ? head_offset_ : 0;
            bufs[n] = asio::buffer(s.data() + off, s.size() - off);
        }
        asio::error_code ec;
        ++write_calls_;
        std::size_t wrote = socket_.write_some(std::span<asio::const_buffer>(bufs.data(), n), ec);
        if (ec == asio::error::would_block || ec == asio::error::try_again) {
            write_blocked_ = true;
            arm_write();
            return true;
        }
        if (ec) {
            reason_ = "write failed: " + ec.message();
            return false;
        }
        consume(wrote);
    }
    return true;
}

void connected_socket_adapter::consume(std::size_t wrote) {
    bytes_out_ += wrote;
    queued_bytes_ -= wrote;
    while (wrote > 0) {
        std::size_t left = queue_[head_].size() - head_offset_;
        if (wrote >= left) {
            wrote -= left;
            recycle(queue_[head_].own);
            queue_[head_] = out_chunk{}; // frees its bytes (or its share) now
            ++head_;
            head_offset_ = 0;
        } else {
            head_offset_ += wrote;
            wrote = 0;
        }
    }
    if (head_ == queue_.size()) {
        queue_.clear();
        head_ = 0;
        if (queue_.capacity() > 64) queue_.shrink_to_fit();
    }
}

bool connected_socket_adapter::flush_or_defer() {
    if (head_ == queue_.size() || write_blocked_) return true; // nothing to do, or the writability wake-up flushes
    bool defer =
        opt_.coalesce_bytes != 0 && queued_bytes_ < opt_.coalesce_bytes && !unanswered_ && !finishing_ && !tls_busy();
    if (!defer) {
        unanswered_ = false;
        return flush();
    }
    if (flush_posted_) return true;
    flush_posted_ = true;
    // A post runs at the scheduler's next I/O poll: after every component
    // queued now has run, so their output joins this write.
    asio::post(sched()->io(), [t = anchor_.token(), this] {
        if (!*t) return; // the adapter is gone (or closed): `this` is not touched
        flush_posted_ = false;
        std::size_t before = queued_bytes_;
        if (!flush()) write_failed_ = true;
        // Wake the body only for what it waits on: an error, room after a
        // full queue, the last bytes of a close. A fan-out's writes wake nobody.
        bool room = before >= opt_.high_watermark && queued_bytes_ < opt_.high_watermark;
        bool resume = read_paused_ && queued_bytes_ <= opt_.low_watermark;
        if (write_failed_ || room || resume || (finishing_ && queued_bytes_ == 0)) io_anchor::signal(t);
    });
    return true;
}

bool connected_socket_adapter::flush_tls() {
    while (!write_blocked_ && head_ < queue_.size()) {
        out_chunk& head = queue_[head_];
        if (!tls_->write_retry) {
            // Join small chunks into one record (a retry must offer the same bytes).
            std::size_t i = head_ + 1;
            while (i < queue_.size() && head.size() - head_offset_ + queue_[i].size() <= tls_record) {
                head.owned().append(queue_[i].data(), queue_[i].size());
                ++i;
            }
            if (i > head_ + 1)
                queue_.erase(queue_.begin() + static_cast<std::ptrdiff_t>(head_ + 1),
                             queue_.begin() + static_cast<std::ptrdiff_t>(i));
        }
        std::size_t len = std::min(head.size() - head_offset_, tls_record);
        ERR_clear_error();
        ++write_calls_;
        int r = SSL_write(tls_->ssl, head.data() + head_offset_, static_cast<int>(len));
        if (r > 0) {
            tls_->write_retry = false;
            consume(static_cast<std::size_t>(r));
            continue;
        }
        switch (SSL_get_error(tls_->ssl, r)) {
        case SSL_ERROR_WANT_WRITE:
            tls_->write_retry = true;
            write_blocked_ = true;
            arm_write();
            return true;
        case SSL_ERROR_WANT_READ:
            tls_->write_retry = true;
            tls_->write_wants_read = true;
            write_blocked_ = true;
            arm_read(true);
            return true;
        default: reason_ = openssl_error("TLS write failed"); return false;
        }
    }
    return true;
}

task connected_socket_adapter::main() {
    last_rx_ = sched()->now();
    std::optional<time_point> close_deadline;
    bool abort = false;
    bool broken = false; // the socket failed: no TLS goodbye
    // Try a read at once: data may already be there (a plain connection's
    // first read op tries it; TLS starts with its handshake).
    readable_ = tls_ != nullptr;
    if (!tls_) arm_read();
    // The chunk queued last can take `n` more bytes: its own (not a share),
    // room without reallocating, and not a TLS write being retried (which
    // must be offered the same bytes again); a plain write rebuilds its
    // buffers each time, so even the head may grow.
    inbox& input = in("inbox"); // resolved once, not by name per message
    auto joinable = [this](std::size_t n) {
        if (queue_.size() == head_) return false;
        const out_chunk& t = queue_.back();
        if (t.ref || t.own.size() + n > t.own.capacity()) return false;
        return queue_.size() > head_ + 1 || !tls_ || !tls_->write_retry;
    };
    while (!abort) {
        // Control first: shutdown_microprocess closes now, producer_finished after a flush.
        while (auto m = recv_message("control")) {
            if (const ipc* c = m->peek<ipc>()) {
                if (c->stops()) {
                    abort = true;
                    reason_ = "shut down";
                } else if (c->finishes()) {
                    finishing_ = true;
                }
            }
        }
        if (abort) break;
        if (tls_) {
            // TLS may need the other direction to make progress.
            if (tls_->write_wants_read && readable_) {
                tls_->write_wants_read = false;
                write_blocked_ = false;
            }
            if (tls_->read_wants_write && !write_blocked_) {
                tls_->read_wants_write = false;
                readable_ = true;
            }
        }

        // Take bytes to write while under the high watermark; a start_tls
        // stops the taking until the handshake is done.
        while (queued_bytes_ < opt_.high_watermark && !tls_busy() && !input.empty()) {
            std::optional<message> m(input.pop());
            if (const std::string* s = m->peek<std::string>()) {
                if (s->empty()) continue;
                queued_bytes_ += s->size();
                if (s->size() < join_below) {
                    if (joinable(s->size())) {
                        queue_.back().own.append(*s);
                    } else if (m->is_shared()) {
                        std::string c = join_chunk();
                        c.append(*s);
                        queue_.emplace_back(std::move(c));
                    } else {
                        queue_.emplace_back(m->take<std::string>());
                    }
                } else if (m->is_shared()) {
                    // Kept by reference: a copy for every subscriber of a
                    // fan-out (a relay's 16 KiB chunks) would cost more.
                    queue_.emplace_back(std::string(), m->take_shared<std::string>());
                } else {
                    queue_.emplace_back(m->take<std::string>());
                }
            } else if (m->peek<start_tls>()) {
                auto st = m->take<start_tls>();
                if (tls_ || !st.context) {
                    spdlog::warn("{}: start_tls ignored ({})", name(), tls_ ? "already TLS" : "no context");
                    continue;
                }
                if (read_armed_ && rx_small_) {
                    // A small read is pending (arm_read's choice without TLS).
                    // OpenSSL reads the handshake from the socket itself: the
                    // reactor must not take it. (The write wait, if any, is
                    // cancelled too; its handler retries the write.)
                    asio::error_code ec;
                    socket_.cancel(ec);
                    read_armed_ = false;
                }
                tls_ = std::make_unique<tls_state>();
                tls_->req = std::move(st);
                readable_ = false; // nothing more is read in clear
                if (rx_got_ == rx_state::data) {
                    // Read before the switch: clear text, ahead of the mark.
                    rx_got_ = rx_state::none;
                    send_forced(message(std::string(rx_buf_.data(), rx_n_)), "outbox");
                }
                if (tls_->req.server) send_forced(message(tls_started{}), "outbox");
            } else {
                spdlog::warn("{}: dropped a {} sent to a socket (send std::string)", name(), m->type_name());
            }
        }
        if (write_failed_ || !flush_or_defer() || !tls_step()) {
            broken = true;
            break;
        }
        if (tls_ && tls_->deadline && sched()->now() >= *tls_->deadline) {
            reason_ = "TLS handshake timed out";
            broken = true;
            break;
        }
        if (queued_bytes_ >= opt_.high_watermark) {
            read_paused_ = true;
        } else if (read_paused_ && queued_bytes_ <= opt_.low_watermark) {
            read_paused_ = false;
        }
        if (finishing_ && queued_bytes_ == 0 && input.empty() && !tls_busy()) {
            reason_ = "closed by handler";
            break;
        }
        if (finishing_) {
            // A peer that never reads must not hold the connection open.
            if (!close_deadline) close_deadline = sched()->now() + opt_.close_timeout;
            if (sched()->now() >= *close_deadline) {
                reason_ = "closed by handler; the peer did not read the rest";
                break;
            }
        }

        // Read what is there, within the budget.
        if (readable_ && !read_closed_ && !read_paused_ && !tls_busy()) {
            readable_ = false;
            std::size_t budget = opt_.read_budget;
            std::size_t passed = 0; // bytes read in this pass
            rx_state got = std::exchange(rx_got_, rx_state::none);
            while (budget > 0) {
                // One chunk a turn and one send below: every co_await costs
                // the frame an awaiter, and the frame is an idle connection's bytes.
                std::string chunk;
                bool drained = false;
                io_result r = io_result::ok;
                if (got == rx_state::data) {
                    // What the reactor read. A full buffer is joined with the rest.
                    got = rx_state::none;
                    chunk.assign(rx_buf_.data(), rx_n_);
                    drained = rx_n_ < rx_buf_.size();
                    if (!drained && budget > rx_n_) {
                        std::size_t n = 0;
                        io_result more = read_some(n);
                        if (more == io_result::ok) {
                            chunk.append(read_buffer.data(), n);
                            drained = n < read_buffer.size();
                        } else if (more == io_result::would_block) {
                            drained = true;
                        } else {
                            got = more == io_result::eof ? rx_state::eof : rx_state::error; // after the chunk
                        }
                    }
                } else if (got != rx_state::none) {
                    r = got == rx_state::eof ? io_result::eof : io_result::error; // reason_ says which
                } else {
                    std::size_t n = 0;
                    r = read_some(n);
                    if (r == io_result::ok) {
                        chunk.assign(read_buffer.data(), n);
                        // A short plain read drained the socket: no EAGAIN read
                        // needed (the next wait reports anything newer).
                        drained = !tls_ && n < read_buffer.size();
                    }
                }
                if (r == io_result::would_block) break;
                if (r == io_result::eof) {
                    // The peer half-closed: no more input. Tell the handler;
                    // it may still answer, then finishes (producer_finished
                    // back on our control) and we close.
                    read_closed_ = true;
                    send_forced(message(producer_finished("peer closed")), "signal");
                    break;
                }
                if (r == io_result::error) {
                    broken = true;
                    break;
                }
                std::size_t n = chunk.size();
                bytes_in_ += n;
                passed += n;
                last_rx_ = sched()->now();
                budget = n >= budget ? 0 : budget - n;
                unanswered_ = true;
                co_await send(std::move(chunk));
                if (drained && got == rx_state::none) break;
            }
            if (broken) break;
            if (budget == 0) readable_ = true; // more may be waiting: come back next cycle
            // Small input (what fits rx_buf_) waits in a read op; larger
            // input waits for readability and is read into the shared buffer.
            if (passed > 0) rx_small_ = passed < rx_buf_.size();
        }
        if (read_closed_ && !out("signal").link()) {
            // Nobody will tell us to finish: close once the writes are out.
            finishing_ = true;
        }
        if (!tls_busy()) arm_read();
        std::optional<duration> limit;
        if (close_deadline) limit = *close_deadline - sched()->now();
        if (tls_ && tls_->deadline) {
            duration left = *tls_->deadline - sched()->now();
            if (!limit || left < *limit) limit = left;
        }
        if (readable_ && !read_closed_ && !read_paused_ && !tls_busy()) {
            // More to read now. (Readable but paused, the socket's wake-up
            // stays recorded and the writes' progress wakes us: no busy loop.)
            co_await yield();
        } else {
            // Full (or handshaking): the inbox waits; only the socket (or
            // "stop") can change things. Otherwise an idle connection keeps
            // one slot of its inbox, not four. (One wait for both: each
            // co_await is an awaiter in the frame, for every connection.)
            bool full = queued_bytes_ >= opt_.high_watermark || tls_busy();
            if (!full) input.shrink();
            co_await wait(full ? ev_external | ev_control : ev_inbox | ev_external, limit);
        }
    }
    // Stopped at once: what the kernel takes of the deferred output still goes.
    if (abort && !tls_busy() && socket_.is_open()) flush();
    if (tls_established() && !broken && !abort) {
        // Say goodbye (close_notify), bounded; the peer's answer is not awaited.
        time_point deadline = sched()->now() + opt_.close_timeout;
        for (;;) {
            ERR_clear_error();
            int r = SSL_shutdown(tls_->ssl);
            if (r >= 0 || SSL_get_error(tls_->ssl, r) != SSL_ERROR_WANT_WRITE) break;
            if (sched()->now() >= deadline) break;
            write_blocked_ = true;
            arm_write();
            duration left = deadline - sched()->now();
            co_await wait(ev_external, left);
        }
        ERR_clear_error();
    }
    if (reason_.empty()) reason_ = read_closed_ ? "peer closed" : "closed";
    close_socket();
    send_forced(message(socket_shutdown(reason_)), "signal");
}

} // namespace kamaelia
