// inactivity_chassis: wraps a component (a protocol handler, a whole graph)
// and shuts it down when no input has arrived for a while.
//
//   server.protocol = [](const connection_info&) {
//       return inactivity_chassis(std::chrono::minutes(5), std::make_unique<pipeline>(greeter_protocol()));
//   };
//
// Boxes are the child's: what reaches the chassis's inbox goes on to the
// child's inbox (and counts as activity), its control goes to the child's
// control; the child's outbox and signal are the chassis's. When `timeout`
// passes with no input, the child gets shutdown_microprocess("inactivity
// timeout") on its control (its end then closes a connection the usual
// way) and the chassis ends with it. Timing runs on the scheduler's clock,
// so a manual clock tests it exactly; no Asio timer per connection.
#pragma once

#include <kamaelia/core/component.hpp>

#include <memory>

namespace kamaelia {

class inactivity_chassis : public component {
public:
    inactivity_chassis(duration timeout, std::unique_ptr<component> child);
    template <class C>
    requires std::is_base_of_v<component, C> inactivity_chassis(duration timeout, C child)
        : inactivity_chassis(timeout, std::make_unique<C>(std::move(child))) {}
    inactivity_chassis(inactivity_chassis&&) = default; // before activation only

    bool timed_out() const noexcept { return timed_out_; }
    std::string type_name() const override { return "inactivity_chassis"; }

protected:
    task main() override;

private:
    duration timeout_;
    component* child_;
    bool timed_out_ = false;
};

} // namespace kamaelia
