// How a chassis ends: which end message it sends on "signal" once its
// children are gone (shared by graphline, seq, par and carousel).
#pragma once

#include <kamaelia/core/component.hpp>

#include <cstdint>
#include <optional>
#include <string>

namespace kamaelia::detail {

// Tracks how a chassis ends. Precedence of the message sent on "signal":
// a stop request received (it asked for it), then a child's failure (the
// graph must hear of it), then a finish received, then producer_finished.
struct end_state {
    std::optional<ipc> received;
    std::optional<ipc> failure;

    void note(const ipc& m) {
        if (!m.ends()) return;
        if (!received || (m.stops() && !received->stops())) received = m;
    }
    void note_failure(const component& c) { note_failure(c.name() + ": " + c.error_text()); }
    void note_failure(std::string what) {
        if (!failure) failure = ipc{ipc_kind::component_error, std::move(what), 0};
    }
    bool stop_requested() const noexcept { return received && received->stops(); }
    bool finish_requested() const noexcept { return received && received->finishes(); }
    bool failed() const noexcept { return failure.has_value(); }

    ipc result(std::uint32_t from) const {
        ipc r;
        if (stop_requested()) {
            r = *received;
        } else if (failure) {
            r = *failure; // its text names the child that failed
        } else if (received) {
            r = *received;
        } else {
            r = producer_finished();
        }
        r.from = from;
        return r;
    }
};

} // namespace kamaelia::detail
