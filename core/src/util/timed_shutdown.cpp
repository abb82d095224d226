#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/util/control_watch.hpp>
#include <kamaelia/util/timed_shutdown.hpp>

namespace kamaelia {

task timed_shutdown::main() {
    control_watch cw;
    const time_point until = sched()->now() + after_;
    for (;;) {
        while (recv_message("inbox")) {}
        cw.poll(*this);
        if (cw.ended()) break;
        time_point now = sched()->now();
        if (now >= until) {
            cw.set_end(shutdown_microprocess("timed_shutdown: time is up"));
            break;
        }
        duration left = until - now;
        co_await wait(ev_inbox, left);
    }
    cw.forward_end(*this);
}

} // namespace kamaelia
