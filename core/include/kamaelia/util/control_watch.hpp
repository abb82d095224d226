// control_watch: how a component reads its "control" box.
//
//   control_watch cw;
//   for (;;) {
//       cw.poll(*this);                     // other notices go out of "signal"
//       if (cw.stopping()) break;           // shutdown_microprocess: stop now
//       while (auto v = recv<int>()) co_await send(*v * 2);
//       if (cw.finishing()) break;          // producer_finished: inbox drained
//       co_await wait_any();
//   }
//   cw.forward_end(*this);                  // the end message, out of "signal"
//
// The end message (the producer_finished family: finish pending work; the
// shutdown_microprocess family: stop now) is kept; every other control
// message is handed to a callback. Unlike component::shutdown_requested()
// it never stalls behind a control message it does not understand, and it
// tells the two families apart after the message has been taken.
#pragma once

#include <kamaelia/core/component.hpp>
#include <kamaelia/core/ipc.hpp>
#include <kamaelia/core/message.hpp>

#include <optional>
#include <utility>

namespace kamaelia {

class control_watch {
public:
    // Takes every waiting control message (so that waiting on the inboxes
    // never spins on a leftover one). An end message is kept; a later one
    // replaces it only to turn "finish" into "stop now", so a shutdown still
    // cuts a long flush short; further ones are dropped.
    template <class F>
    void poll(component& c, F&& other) {
        while (std::optional<message> m = c.recv_message("control")) {
            if (const ipc* i = m->peek<ipc>(); i && i->ends()) {
                if (!end_ || (!end_->stops() && i->stops())) end_ = *i;
                continue;
            }
            other(std::move(*m));
        }
    }
    // Same, passing every other control message on out of "signal".
    void poll(component& c) {
        poll(c, [&c](message&& m) { c.send_forced(std::move(m), "signal"); });
    }

    bool ended() const noexcept { return end_.has_value(); }
    bool stopping() const noexcept { return end_ && end_->stops(); }
    bool finishing() const noexcept { return end_ && end_->finishes(); }
    const std::optional<ipc>& end() const noexcept { return end_; }
    // Records an end the component decided on itself (e.g. its source is gone).
    void set_end(ipc i) {
        if (!end_) end_ = std::move(i);
    }

    // The end message to pass on: the one received (its text kept, `from`
    // set to `c`), or producer_finished when the component ended on its own.
    ipc end_message(const component& c) const {
        ipc out = end_ ? *end_ : producer_finished();
        out.from = c.id();
        return out;
    }
    // Sends end_message() out of `b`, ignoring the bound: it must not be lost.
    void forward_end(component& c, box_name b = "signal") const { c.send_forced(message(end_message(c)), b); }

private:
    std::optional<ipc> end_;
};

} // namespace kamaelia
