#include <kamaelia/net/connected_socket_adapter.hpp>

#include <spdlog/spdlog.h>

#include <array>
#include <optional>
#include <span>

namespace kamaelia {

namespace {
// One read buffer per scheduler thread, shared by all its connections.
thread_local std::array<char, 64 * 1024> read_buffer;
} // namespace

connected_socket_adapter::connected_socket_adapter(asio::ip::tcp::socket socket, csa_options options)
    : socket_(std::move(socket)), opt_(options), anchor_(*this) {
    asio::error_code ec;
    socket_.non_blocking(true, ec);
}

connected_socket_adapter::~connected_socket_adapter() {
    anchor_.clear();
    teardown_now(); // the frame goes before the socket it uses
}

void connected_socket_adapter::close_socket() noexcept {
    anchor_.clear();
    asio::error_code ec;
    if (socket_.is_open()) {
        socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
        socket_.close(ec);
    }
}

void connected_socket_adapter::arm_read() {
    if (read_armed_ || read_closed_ || read_paused_ || readable_) return;
    read_armed_ = true;
    socket_.async_wait(asio::ip::tcp::socket::wait_read, [t = anchor_.token(), this](const asio::error_code&) {
        if (!*t) return; // the adapter is gone: `this` is not touched
        read_armed_ = false;
        readable_ = true; // on error too: the read reports it
        io_anchor::signal(t);
    });
}

void connected_socket_adapter::arm_write() {
    socket_.async_wait(asio::ip::tcp::socket::wait_write, [t = anchor_.token(), this](const asio::error_code&) {
        if (!*t) return;
        write_blocked_ = false;
        io_anchor::signal(t);
    });
}

bool connected_socket_adapter::flush() {
    while (!write_blocked_ && head_ < queue_.size()) {
        // Gather up to 16 chunks into one writev.
        std::array<asio::const_buffer, 16> bufs;
        std::size_t n = 0;
        for (std::size_t i = head_; i < queue_.size() && n < bufs.size(); ++i, ++n) {
            const std::string& s = queue_[i];
            std::size_t off = (i == head_) ? head_offset_ : 0;
            bufs[n] = asio::buffer(s.data() + off, s.size() - off);
        }
        asio::error_code ec;
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
        bytes_out_ += wrote;
        queued_bytes_ -= wrote;
        while (wrote > 0) {
            std::size_t left = queue_[head_].size() - head_offset_;
            if (wrote >= left) {
                wrote -= left;
                queue_[head_].clear();
                queue_[head_].shrink_to_fit();
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
    return true;
}

task connected_socket_adapter::main() {
    last_rx_ = sched()->now();
    bool graceful_close = false; // producer_finished: flush, then close
    std::optional<time_point> close_deadline;
    bool abort = false;
    readable_ = true; // try a read at once: data may already be there
    while (!abort) {
        // Control first: shutdown_microprocess closes now, producer_finished after a flush.
        while (auto m = recv_message("control")) {
            if (const ipc* c = m->peek<ipc>()) {
                if (c->stops()) {
                    abort = true;
                    reason_ = "shut down";
                } else if (c->finishes()) {
                    graceful_close = true;
                }
            }
        }
        if (abort) break;

        // Take bytes to write while under the high watermark.
        while (queued_bytes_ < opt_.high_watermark) {
            auto m = recv_message("inbox");
            if (!m) break;
            if (std::string* s = const_cast<std::string*>(m->peek<std::string>())) {
                if (s->empty()) continue;
                queued_bytes_ += s->size();
                queue_.push_back(m->take<std::string>());
            } else {
                spdlog::warn("{}: dropped a {} sent to a socket (send std::string)", name(), m->type_name());
            }
        }
        if (!flush()) break;
        if (queued_bytes_ >= opt_.high_watermark) {
            read_paused_ = true;
        } else if (read_paused_ && queued_bytes_ <= opt_.low_watermark) {
            read_paused_ = false;
        }
        if (graceful_close && queued_bytes_ == 0 && in("inbox").empty()) {
            reason_ = "closed by handler";
            break;
        }
        if (graceful_close) {
            // A peer that never reads must not hold the connection open.
            if (!close_deadline) close_deadline = sched()->now() + opt_.close_timeout;
            if (sched()->now() >= *close_deadline) {
                reason_ = "closed by handler; the peer did not read the rest";
                break;
            }
        }

        // Read what is there, within the budget.
        if (readable_ && !read_closed_ && !read_paused_) {
            readable_ = false;
            std::size_t budget = opt_.read_budget;
            bool broken = false;
            while (budget > 0) {
                asio::error_code ec;
                std::size_t n = socket_.read_some(asio::buffer(read_buffer.data(), read_buffer.size()), ec);
                if (ec == asio::error::would_block || ec == asio::error::try_again) break;
                if (ec == asio::error::eof) {
                    // The peer half-closed: no more input. Tell the handler;
                    // it may still answer, then finishes (producer_finished
                    // back on our control) and we close.
                    read_closed_ = true;
                    send_forced(message(producer_finished("peer closed")), "signal");
                    break;
                }
                if (ec) {
                    reason_ = "read failed: " + ec.message();
                    broken = true;
                    break;
                }
                bytes_in_ += n;
                last_rx_ = sched()->now();
                budget = n >= budget ? 0 : budget - n;
                co_await send(std::string(read_buffer.data(), n));
            }
            if (broken) break;
            if (budget == 0) readable_ = true; // more may be waiting: come back next cycle
        }
        if (read_closed_ && !out("signal").link()) {
            // Nobody will tell us to finish: close once the writes are out.
            graceful_close = true;
        }
        arm_read();
        std::optional<duration> limit;
        if (close_deadline) limit = *close_deadline - sched()->now();
        if (readable_) {
            co_await yield();
        } else if (queued_bytes_ >= opt_.high_watermark) {
            // Full: the inbox waits; only the socket (or "stop") can change things.
            co_await wait_events(ev_external | ev_control, limit);
        } else {
            co_await wait_events(ev_inbox | ev_external, limit);
        }
    }
    if (reason_.empty()) reason_ = read_closed_ ? "peer closed" : "closed";
    close_socket();
    send_forced(message(socket_shutdown(reason_)), "signal");
}

} // namespace kamaelia
