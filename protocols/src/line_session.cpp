#include <kamaelia/protocols/line_session.hpp>

namespace kamaelia {

subtask<bool> line_session::flush() {
    if (socket_closed()) {
        out_.clear(); // nobody to read it
        co_return false;
    }
    if (out_.empty()) co_return true;
    std::string chunk = std::move(out_);
    out_.clear();
    bool sent = co_await send(std::move(chunk), "outbox");
    co_return sent;
}

void line_session::scan_control() {
    while (auto m = recv_message("control")) {
        const ipc* i = m->peek<ipc>();
        if (!i || !i->ends()) continue;
        seen_ |= bit(i->kind);
        if (!end_ || i->stops() || i->kind == ipc_kind::socket_shutdown) end_ = *i;
    }
}

bool line_session::stop_seen() const noexcept {
    return seen(ipc_kind::shutdown_microprocess) || seen(ipc_kind::server_shutdown) || seen(ipc_kind::component_error);
}

} // namespace kamaelia
