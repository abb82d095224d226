// Delivering a message into a component from outside any component: a
// main() or a test feeding a component, a timer or signal handler telling
// one to stop, a parent setting up its children before they run.
//
//   kamaelia::deliver(server, "control", message(shutdown_microprocess("signal")));
//
// A component body does not use this: it sends through its own boxes
// (send, try_send, send_forced), so links and their policies apply.
//
// The message goes where a message put into that box ends up: following the
// box's passthrough links (a chassis's inbox reaches its first child), to
// the final inbox, waking its owner. Call it on the thread that runs the
// component's scheduler (from another thread, scheduler::post the call).
#pragma once

#include <kamaelia/core/box.hpp>
#include <kamaelia/core/fwd.hpp>
#include <kamaelia/core/message.hpp>

namespace kamaelia {

// Outside code has nobody to suspend, so `policy` says what a full inbox
// does with the message:
//   suspend (default)  it enters past the bound, as send_forced does: the
//                      caller cannot wait, and what it delivers (a stop, a
//                      test's input, a reload) must not be lost
//   drop_newest        it is discarded
//   drop_oldest        the oldest waiting message is discarded to make room
//   fail               nothing is delivered and it is logged
// True when the message is in the inbox. False when it was discarded or
// refused, or the box's chain ends at an outbox (nothing receives it).
// Throws (as in() does) when the component has no such inbox.
bool deliver(component& c, box_name b, message m, delivery_policy policy = delivery_policy::suspend);

} // namespace kamaelia
