#include <kamaelia/util/control_watch.hpp>
#include <kamaelia/util/two_way_splitter.hpp>

namespace kamaelia {

two_way_splitter::two_way_splitter() {
    declare_outbox("outbox2", "a share of every message on inbox");
    declare_outbox("signal2", "every control message, as on signal");
}

task two_way_splitter::main() {
    control_watch cw;
    for (;;) {
        cw.poll(*this, [this](message&& m) {
            send_forced(m.share(), "signal");
            send_forced(std::move(m), "signal2");
        });
        if (cw.stopping()) break;
        while (auto m = recv_message("inbox")) {
            message copy = m->share();
            co_await send_message(std::move(copy), "outbox");
            co_await send_message(std::move(*m), "outbox2");
        }
        if (cw.finishing()) break;
        co_await wait_any();
    }
    cw.forward_end(*this, "signal");
    cw.forward_end(*this, "signal2");
}

} // namespace kamaelia
