// timed_shutdown: sends shutdown_microprocess out of "signal" once a time
// has passed, then ends. A timer on the scheduler (sleep-like), never a
// thread; link its signal to the control of what it should stop.
//
//   timed_shutdown after(std::chrono::seconds(5));
//   component::link({after, "signal"}, {server, "control"});
//
// The time counts from its first run. An end message on its own "control"
// before then ends it early and is passed on instead; its inbox is ignored.
#pragma once

#include <kamaelia/core/component.hpp>

namespace kamaelia {

class timed_shutdown : public component {
public:
    explicit timed_shutdown(duration after) : after_(after) {}
    timed_shutdown(timed_shutdown&&) = default;

    duration after() const noexcept { return after_; }
    std::string type_name() const override { return "timed_shutdown"; }

protected:
    task main() override;

private:
    duration after_;
};

} // namespace kamaelia
