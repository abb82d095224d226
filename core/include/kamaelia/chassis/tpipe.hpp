// tpipe: a tee with a child "action" component (Kamaelia's TPipe).
//
//   tpipe t(logger(), [](const std::string& line) { return line.starts_with("ERR"); });
//
// mode split (default): every message goes on out of "outbox" and, when the
//   condition holds, a share of it also goes into the child;
// mode route: a message the condition holds for goes into the child
//   instead of "outbox"; the others go on out of "outbox".
// sink (default true): feed the child at all (route mode without sink
//   drops what matches). source (default false): the child's output
//   re-enters the main stream out of "outbox"; otherwise it is discarded.
//
// The tpipe owns the child and ends when the child ends. Control messages
// go to the child and out of "signal"; an end message is handed to the
// child once the input is drained (at once for shutdown_microprocess), and
// leaves by "signal" when the child has ended, after the child's last
// output, so downstream never sees the end before the data. If the child
// ends on its own, its end message is passed on. The child's other signal
// messages are not (they are mostly our control passed back). Sends wait for room; note
// that with source=true a child whose output we cannot take while it cannot
// take our input would deadlock, as any bounded cycle can: keep such a
// child's inbox limit above what one input makes it emit.
#pragma once

#include <kamaelia/core/component.hpp>
#include <kamaelia/util/message_predicate.hpp>

#include <cstdint>
#include <memory>
#include <type_traits>
#include <utility>

namespace kamaelia {

enum class tpipe_mode : std::uint8_t { split, route };

struct tpipe_options {
    tpipe_mode mode = tpipe_mode::split;
    bool sink = true;
    bool source = false;
};

class tpipe : public component {
public:
    template <class C, class F>
    requires std::is_base_of_v<component, std::remove_cvref_t<C>> &&
        (!std::is_lvalue_reference_v<C>)tpipe(C&& action, F condition, tpipe_options options = {})
        : cond_(make_message_predicate(std::move(condition))),
          options_(options) {
        child_ = &add_child(std::forward<C>(action));
        declare_boxes();
    }
    template <class C, class F>
    requires std::is_base_of_v<component, C> tpipe(std::unique_ptr<C> action, F condition, tpipe_options options = {})
        : cond_(make_message_predicate(std::move(condition))),
          options_(options) {
        child_ = &add_child(std::move(action));
        declare_boxes();
    }
    tpipe(tpipe&&) = default;

    // The child (valid until the tpipe ends: a finished parent deletes its children).
    component& action() const noexcept { return *child_; }
    const tpipe_options& options() const noexcept { return options_; }
    std::string type_name() const override { return "tpipe"; }

protected:
    task main() override;

private:
    void declare_boxes();

    message_predicate cond_;
    tpipe_options options_;
    component* child_ = nullptr;
};

} // namespace kamaelia
