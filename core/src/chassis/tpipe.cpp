#include <kamaelia/chassis/tpipe.hpp>
#include <kamaelia/util/control_watch.hpp>

#include <optional>

namespace kamaelia {

void tpipe::declare_boxes() {
    declare_outbox("_to_child", "into the action's inbox");
    declare_outbox("_child_control", "into the action's control");
    declare_inbox("_from_child", "the action's outbox");
    declare_inbox("_child_signal", "the action's signal");
}

task tpipe::main() {
    component& child = *child_;
    link({*this, "_to_child"}, {child, "inbox"});
    link({*this, "_child_control"}, {child, "control"});
    link({child, "outbox"}, {*this, "_from_child"});
    link({child, "signal"}, {*this, "_child_signal"});
    child.activate();

    control_watch cw;
    bool told_child = false;
    std::optional<ipc> child_end;
    for (;;) {
        cw.poll(*this, [this](message&& m) {
            send_forced(m.share(), "_child_control");
            send_forced(std::move(m), "signal");
        });
        if (cw.stopping()) {
            while (recv_message("inbox")) {} // stopping: input is dropped (and must not keep us awake)
        } else {
            while (auto m = recv_message("inbox")) {
                bool hit = cond_(*m);
                bool to_child = hit && options_.sink && !child.finished();
                if (options_.mode == tpipe_mode::split) {
                    if (to_child) {
                        message copy = m->share();
                        co_await send_message(std::move(copy), "_to_child");
                    }
                    co_await send_message(std::move(*m), "outbox");
                } else if (!hit) {
                    co_await send_message(std::move(*m), "outbox");
                } else if (to_child) {
                    co_await send_message(std::move(*m), "_to_child");
                }
            }
        }
        // The child hears the end after the last message meant for it.
        if (cw.ended() && !told_child && (cw.stopping() || in("inbox").empty())) {
            cw.forward_end(*this, "_child_control");
            told_child = true;
        }
        while (auto m = recv_message("_from_child")) {
            if (options_.source) co_await send_message(std::move(*m), "outbox");
        }
        while (auto m = recv_message("_child_signal")) {
            // Its other notices stay inside: they are mostly our own control
            // messages passed back, already sent out of "signal".
            if (const ipc* i = m->peek<ipc>(); i && i->ends()) child_end = *i;
        }
        if (child.finished() && data_ready("_from_child") == 0 && data_ready("_child_signal") == 0) break;
        co_await wait(ev_inbox | ev_children);
    }
    if (!cw.ended() && child_end) cw.set_end(*child_end);
    cw.forward_end(*this);
}

} // namespace kamaelia
