#include <kamaelia/net/lines_to_chunks.hpp>
#include <kamaelia/protocols/line_protocol.hpp>

#include <string_view>

namespace kamaelia {

namespace {
constexpr std::size_t max_message = lines_to_chunks::default_max_chunk;
} // namespace

// One pass a batch: control, then everything that waits is framed and
// answered, then one send. The replies to pipelined requests thus leave
// together, and a request costs the scheduler two trips (the adapter, this)
// rather than the pipeline's four.
task line_protocol_base::main() {
    for (;;) {
        if (shutdown_requested()) {
            // A stop drops what is not answered; a finish (the inbox is
            // drained by now) waits for the input already taken.
            if (shutdown_is_stop()) break;
            if (chunk_pos_ >= chunk_.size()) end_input();
        }
        if (phase_ == phase::open) answer_input();
        if (!out_.empty()) {
            co_await send(std::move(out_));
            out_.clear();
        }
        if (phase_ != phase::open) break;
        if (chunk_pos_ < chunk_.size()) continue; // the replies filled a message mid-chunk
        in("inbox").shrink();                     // a connection idles far longer than it works
        co_await wait_any();
    }
    if (phase_ == phase::too_long) {
        ipc e = protocol_error(error_text());
        e.from = id();
        send_forced(message(std::move(e)), "signal");
    } else {
        forward_shutdown();
    }
}

void line_protocol_base::answer_input() {
    for (;;) {
        if (chunk_pos_ == chunk_.size() && !chunk_.empty()) {
            chunk_ = std::string(); // a read's buffer is not kept while idle
            chunk_pos_ = 0;
        }
        if (out_.size() >= max_message) return;
        if (chunk_.empty()) {
            std::optional<std::string> raw = recv<std::string>();
            if (!raw) return;
            chunk_ = decoder_.decode(std::move(*raw));
            continue;
        }
        // One line at a time, so the replies can stop at a message's worth
        // with the rest of the chunk kept for the next pass.
        std::string_view rest(chunk_.data() + chunk_pos_, chunk_.size() - chunk_pos_);
        std::size_t n = rest.find_first_of(std::string_view("\n\0", 2));
        n = n == std::string_view::npos ? rest.size() : n + 1;
        chunk_pos_ += n;
        std::string ending = crlf_ ? "\r\n" : "\n";
        bool ok = chunks_to_lines::split(partial_, rest.substr(0, n), max_line_, ending,
                                         [&](std::string&& line) { answer_line(std::move(line), ending); });
        crlf_ = ending.size() == 2;
        if (!ok) {
            // As telnet_lines and lines_to_chunks: the replies to the lines
            // before it, then why, then the connection ends.
            out_ += error_text();
            out_ += ending;
            phase_ = phase::too_long;
            partial_ = std::string();
            chunk_ = std::string();
            chunk_pos_ = 0;
            return;
        }
    }
}

void line_protocol_base::answer_line(std::string&& line, const std::string& ending) {
    if (answer(std::move(line), out_)) out_ += ending;
}

void line_protocol_base::end_input() {
    phase_ = phase::ended;
    std::string ending = crlf_ ? "\r\n" : "\n";
    // A last line without its end still counts (a lone CR is no line).
    if (!partial_.empty() && partial_ != "\r") answer_line(std::move(partial_), ending);
    partial_ = std::string();
    if (shutdown_kind() == ipc_kind::protocol_error) {
        std::string text = shutdown_text();
        out_ += text.empty() ? "error: the input broke the protocol" : text;
        out_ += ending;
    }
    // The socket has gone: nobody reads it (and a send could wait on a
    // finished adapter's full inbox).
    if (shutdown_kind() == ipc_kind::socket_shutdown) out_.clear();
}

std::string line_protocol_base::error_text() const {
    return "error: line too long (the limit is " + std::to_string(max_line_) + " bytes)";
}

} // namespace kamaelia
