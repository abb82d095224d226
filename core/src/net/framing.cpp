#include <kamaelia/net/chunks_to_lines.hpp>
#include <kamaelia/net/lines_to_chunks.hpp>

#include <algorithm>
#include <functional>
#include <optional>

namespace kamaelia {

chunks_to_lines::chunks_to_lines(std::size_t max_line)
    : max_(max_line),
      state_(std::make_shared<detail::line_state>()) {}

task chunks_to_lines::main() {
    std::string partial;
    bool ok = true;
    while (ok && !shutdown_requested()) {
        while (auto raw = recv<std::string>()) {
            std::string chunk = preprocess(std::move(*raw));
            std::vector<std::string> lines;
            ok = split(partial, chunk, max_, state_->ending, [&](std::string&& l) { lines.push_back(std::move(l)); });
            for (auto& l : lines) co_await send(std::move(l));
            if (!ok) break;
        }
        if (!ok) break;
        co_await wait_any();
    }
    if (!ok) {
        send_forced(message(protocol_error("error: line too long (the limit is " + std::to_string(max_) + " bytes)")),
                    "signal");
        co_return;
    }
    // A last line without a terminator still counts when the input ends.
    if (!partial.empty() && partial != "\r") co_await send(std::move(partial));
    forward_shutdown();
}

lines_to_chunks::lines_to_chunks(std::string ending) : fixed_(std::move(ending)) {}

void lines_to_chunks::find_partner() {
    // The framer is a sibling or a cousin within the same connection graph:
    // search each ancestor's subtree, nearest first.
    std::function<chunks_to_lines*(component*, int)> search = [&](component* c, int depth) -> chunks_to_lines* {
        if (auto* f = dynamic_cast<chunks_to_lines*>(c)) return f;
        if (depth == 0) return nullptr;
        for (component* k : c->children())
            if (auto* f = search(k, depth - 1)) return f;
        return nullptr;
    };
    for (component* p = parent(); p; p = p->parent()) {
        if (auto* f = search(p, 3)) {
            state_ = f->line_state();
            return;
        }
    }
}

task lines_to_chunks::main() {
    if (fixed_.empty()) find_partner();
    auto ending = [&]() -> const std::string& {
        static const std::string crlf = "\r\n";
        return !fixed_.empty() ? fixed_ : (state_ ? state_->ending : crlf);
    };
    if (bound_output_ != 0) {
        // Lines are at most default_max_line (the framer's bound) each.
        in("inbox").set_limit(static_cast<std::uint32_t>(std::max<std::size_t>(16, bound_output_ / default_max_line)));
        if (inbox* socket = out("outbox").final_inbox())
            socket->set_limit(static_cast<std::uint32_t>(std::max<std::size_t>(1, bound_output_ / max_chunk_)));
    }
    while (!shutdown_requested()) {
        std::string out;
        bool sent = true;
        while (sent) {
            while (out.size() < max_chunk_) {
                std::optional<std::string> line = recv<std::string>();
                if (!line) break;
                out += *line;
                out += ending();
            }
            if (out.empty()) break;
            bool more = out.size() >= max_chunk_;
            bool ok = co_await send(std::move(out));
            sent = ok; // false: a stop arrived while it waited (see the loop's test)
            out.clear();
            if (!more) break;
        }
        co_await wait_any();
    }
    if (shutdown_kind() == ipc_kind::protocol_error) {
        // Tell the client why, then let the socket flush and close.
        std::string text = shutdown_text();
        if (text.empty()) text = "error: the input broke the protocol";
        co_await send(text + ending());
    }
    forward_shutdown();
}

} // namespace kamaelia
