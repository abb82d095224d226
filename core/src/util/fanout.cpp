#include <kamaelia/util/control_watch.hpp>
#include <kamaelia/util/fanout.hpp>

namespace kamaelia {

fanout::fanout(std::vector<std::string> outboxes) : names_(std::move(outboxes)) {
    for (auto& n : names_) declare_outbox(n, "a share of every message on inbox");
}

task fanout::main() {
    // Resolved once, now that the component can no longer move.
    std::vector<box_name> boxes;
    boxes.reserve(names_.size());
    for (auto& n : names_) boxes.emplace_back(std::string_view(n));
    control_watch cw;
    for (;;) {
        cw.poll(*this);
        if (cw.stopping()) break;
        while (auto m = recv_message("inbox")) {
            for (std::size_t i = 0; i < boxes.size(); ++i) {
                box_name b = boxes[i];
                message out = i + 1 < boxes.size() ? m->share() : std::move(*m);
                co_await send_message(std::move(out), b);
            }
        }
        if (cw.finishing()) break;
        co_await wait_any();
    }
    cw.forward_end(*this);
}

} // namespace kamaelia
