#include <kamaelia/util/control_watch.hpp>
#include <kamaelia/util/router.hpp>

namespace kamaelia {

router::router(std::vector<route> routes) : routes_(std::move(routes)) {
    for (auto& r : routes_) {
        box_name b{std::string_view(r.outbox)};
        if (!has_box(b)) {
            declare_outbox(r.outbox, "messages matching a rule");
        } else if (r.outbox == "signal" || !find_box(b).is_outbox()) {
            throw bad_box("router: cannot route to \"" + r.outbox + "\"");
        }
        if (!r.when) throw bad_state("router: the rule for \"" + r.outbox + "\" has no predicate");
    }
    hits_.reserve(routes_.size());
}

task router::main() {
    std::vector<box_name> boxes;
    boxes.reserve(routes_.size());
    for (auto& r : routes_) boxes.emplace_back(std::string_view(r.outbox));
    control_watch cw;
    for (;;) {
        cw.poll(*this);
        if (cw.stopping()) break;
        while (auto m = recv_message("inbox")) {
            hits_.clear();
            for (std::size_t i = 0; i < routes_.size(); ++i)
                if (routes_[i].when(*m)) hits_.push_back(i);
            if (hits_.empty()) {
                ++unrouted_;
                continue;
            }
            for (std::size_t k = 0; k < hits_.size(); ++k) {
                box_name b = boxes[hits_[k]];
                message out = k + 1 < hits_.size() ? m->share() : std::move(*m);
                co_await send_message(std::move(out), b);
            }
        }
        if (cw.finishing()) break;
        co_await wait_any();
    }
    cw.forward_end(*this);
}

} // namespace kamaelia
