#include <kamaelia/smtp/framer.hpp>

#include <kamaelia/net/tls.hpp>

#include <utility>

namespace kamaelia::smtp {

line_reader::line framed_line::view(std::size_t limit) const noexcept {
    line_reader::line l;
    if (too_long || wire_size() > limit) {
        l.too_long = true;
        return l;
    }
    l.text = text;
    l.crlf = crlf;
    l.bare_cr = bare_cr;
    return l;
}

framer::framer(std::size_t max_line) : reader_(max_line) {
    declare_inbox("reframe", "orders from the session: reframe{end} when it is over");
}

bool framer::take_orders() {
    while (auto m = recv_message("reframe")) {
        const reframe* r = m->peek<reframe>();
        if (!r) continue;
        if (r->end) return true;
    }
    return false;
}

bool framer::pass_control() {
    while (auto m = recv_message("control")) {
        if (const ipc* c = m->peek<ipc>(); c && c->kind == ipc_kind::socket_shutdown) socket_closed_ = true;
        send_forced(std::move(*m), "signal"); // control notices are few and must not be lost
    }
    return socket_closed_;
}

subtask<bool> framer::emit(message m) {
    if (try_send_message(m, "outbox")) co_return true;
    // The session is busy (a greylist answer, the upstream): wait for room.
    // A stop wakes the wait without sending; pass it on and send again.
    for (;;) {
        if (orders_pending()) co_return false;
        const framed_line* l = m.peek<framed_line>();
        message again = l ? message(framed_line(*l)) : message(reframed{});
        if (co_await send_message(std::move(again), "outbox")) co_return true;
        pass_control();
    }
}

task framer::main() {
    for (;;) {
        if (take_orders()) co_return;
        if (reset_due_) {
            reset_due_ = false;
            if (!co_await emit(message(reframed{}))) continue; // a newer order first; the mark follows it
        }
        bool interrupted = false;
        while (!interrupted) {
            auto m = recv_message("inbox");
            if (!m) break;
            if (m->peek<tls_started>()) {
                // The adapter's mark: what is held was read in clear. Drop
                // it, and mark the place in the line stream for the session.
                reader_.clear();
                reset_due_ = true;
                interrupted = true;
                break;
            }
            const std::string* bytes = m->peek<std::string>();
            if (!bytes) continue;
            reader_.feed(*bytes);
            while (auto l = reader_.next()) {
                framed_line f{std::string(l->text), l->crlf, l->bare_cr, l->too_long};
                if (!co_await emit(message(std::move(f))) || orders_pending()) {
                    interrupted = true;
                    break;
                }
            }
        }
        if (interrupted) continue;
        // After the lines of every byte that came before them.
        if (pass_control()) co_return; // the socket has closed: nothing more can come
        if (!in("inbox").empty() || orders_pending()) continue;
        co_await wait_any();
    }
}

} // namespace kamaelia::smtp
