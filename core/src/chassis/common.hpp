// What every chassis shares: delivering a control notice to a child, and
// deciding which end message the chassis sends when its children are gone.
#pragma once

#include <kamaelia/chassis/detail/end_state.hpp>
#include <kamaelia/core/component.hpp>

#include <utility>

namespace kamaelia::detail {

// Puts `m` into the control inbox where `c` really reads it: a chassis child
// may pass its control through to a grandchild, and pushing into the
// child's own storage would bypass that link. Forced: control notices are
// never lost to a full box.
inline void push_control(component& c, message m) {
    if (inbox* fin = c.in("control").final_inbox()) detail::inbox_access::push_forced(*fin, std::move(m));
}

inline void push_control(component& c, const ipc& m) { push_control(c, message(ipc(m))); }

// A second message carrying the same payload, for fan-out. ipc is copied
// (small, and each child may consume it as a value); anything else is
// shared, so one immutable payload reaches every child.
inline message duplicate(message& m) {
    if (const ipc* i = m.peek<ipc>()) return message(ipc(*i));
    return m.share();
}

// Discards whatever waits in one of our own inboxes that nobody can read
// any more (its consumer has ended), so waiting on "children or inbox"
// never wakes for it again.
inline std::size_t discard_inbox(component& self, box_name b) {
    std::size_t n = 0;
    while (self.recv_message(b)) ++n;
    return n;
}

} // namespace kamaelia::detail
