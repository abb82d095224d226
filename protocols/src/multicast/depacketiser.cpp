#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/multicast/depacketiser.hpp>
#include <kamaelia/net/datagram.hpp>
#include <kamaelia/util/control_watch.hpp>

#include <spdlog/spdlog.h>

namespace kamaelia::multicast {

std::uint64_t depacketiser::rejected_total() const noexcept {
    std::uint64_t n = 0;
    for (auto v : rejected_) n += v;
    return n;
}

void depacketiser::feed(std::string_view d) {
    packet_view p;
    decode_error e = decode(d, p);
    if (e != decode_error::none) {
        ++rejected_[static_cast<std::size_t>(e)];
        return;
    }
    if (!seen_) {
        seen_ = true;
        first_ = sched()->now();
    }
    // The carousel repeats a file already delivered: skip it cheaply.
    if (files_ > 0 && p.meta.same_file(last_)) return;
    asm_.add(p);
}

task depacketiser::main() {
    control_watch cw;
    for (;;) {
        cw.poll(*this);
        if (cw.stopping()) break;
        while (auto m = recv_message("inbox")) {
            if (const auto* b = m->peek<datagram_batch>()) {
                for (std::size_t i = 0; i < b->size(); ++i) feed((*b)[i]);
            } else if (const auto* s = m->peek<std::string>()) {
                feed(*s);
            } else {
                spdlog::warn("{}: ignored a {} (want datagram_batch or std::string)", name(), m->type_name());
            }
            if (!asm_.complete()) continue;
            if (!asm_.verified()) {
                ++mismatches_;
                spdlog::warn("{}: file {:08x} complete but its SHA-256 does not match: assembling it again", name(),
                             asm_.meta().file_id);
                asm_.reset();
                continue;
            }
            done_ = sched()->now();
            ++files_;
            last_ = asm_.meta();
            received_file f{asm_.meta(), asm_.release()};
            co_await send(std::move(f));
            if (opt_.finish_on_complete) {
                cw.set_end(producer_finished("file complete"));
                break;
            }
        }
        if (cw.ended()) break;
        co_await wait_any();
    }
    cw.forward_end(*this);
}

} // namespace kamaelia::multicast
