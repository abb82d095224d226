#include <kamaelia/util/control_watch.hpp>
#include <kamaelia/util/null_sink.hpp>

namespace kamaelia {

task null_sink::main() {
    control_watch cw;
    for (;;) {
        while (recv_message("inbox")) ++discarded_;
        cw.poll(*this);
        if (cw.ended()) break; // either kind: the inbox is already drained
        co_await wait_any();
    }
    cw.forward_end(*this);
}

} // namespace kamaelia
