// Pipeline: components in a row, each one's output the next one's input.
//
//   pipeline(producer(), upper(), printer()).run();
//
// Kamaelia's Pipeline. When the pipeline starts it links
//   ci.outbox → ci+1.inbox and ci.signal → ci+1.control,
// passes its own inbox/control through to c1's (inbox→inbox links) and
// surfaces cn's outbox/signal as its own (outbox→outbox links), so a
// pipeline is used exactly like one component and nests:
//   pipeline(pipeline(a(), b()), c()).
// pipeline::circular(...) links cn back to c1 instead of surfacing it.
//
// The pipeline never looks at the traffic and sends nothing itself: shutdown
// travels along signal→control, and the pipeline ends once every child has
// ended. Two things the original lacked:
//  - when a stage ends (early, or because it failed: the core then sends a
//    component_error out of its signal, so its downstream hears of it), the
//    stages upstream of it still running are told to stop
//    (shutdown_microprocess), as a Unix pipeline's writers get SIGPIPE:
//    nothing they produce can go anywhere, and they would keep the pipeline
//    alive for ever. In the usual cascade they have ended already. A ring
//    has no upstream and is left to its own signal links.
//  - once c1 has ended, control still reaching the pipeline is handed to the
//    first stage still running, and data reaching it is discarded.
//
// Children are taken by value (moved; components may move before they are
// activated) or as std::unique_ptr. An integer before a child sets that
// child's inbox limit, a delivery_policy sets the policy of the link into
// it (Kamaelia's experimental `Pipeline(10, A(), B())`):
//   pipeline(reader(), 16, delivery_policy::drop_oldest, slow_writer())
// The limit applies to the child's own inbox: a nested chassis passes its
// inbox through, so limit its first stage instead.
#pragma once

#include <kamaelia/core/component.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

namespace kamaelia {

class pipeline : public component {
public:
    template <class... Parts>
    explicit pipeline(Parts&&... parts) {
        (add_part(std::forward<Parts>(parts)), ...);
        check_trailing_options();
    }

    // cn.outbox → c1.inbox and cn.signal → c1.control: a ring. The
    // pipeline's own outbox and signal stay unused.
    template <class... Parts>
    static pipeline circular(Parts&&... parts) {
        pipeline p;
        p.circular_ = true;
        (p.add_part(std::forward<Parts>(parts)), ...);
        p.check_trailing_options();
        return p;
    }

    pipeline(pipeline&&) = default;

    bool is_circular() const noexcept { return circular_; }
    std::size_t size() const noexcept { return stages_.size(); }

protected:
    task main() override;

private:
    struct stage_options {
        std::uint32_t limit = 0; // 0: leave the inbox's default bound
        delivery_policy policy = delivery_policy::suspend;
    };

    template <class P>
    void add_part(P&& p) {
        using T = std::remove_cvref_t<P>;
        if constexpr (std::is_same_v<T, delivery_policy>) {
            pending_.policy = p;
            has_pending_ = true;
        } else if constexpr (std::is_integral_v<T>) {
            static_assert(!std::is_same_v<T, bool>, "pipeline: an inbox limit is a number, not a bool");
            set_pending_limit(static_cast<long long>(p));
        } else if constexpr (is_unique_ptr<T>::value) {
            static_assert(std::is_base_of_v<component, typename T::element_type>,
                          "pipeline: a std::unique_ptr stage must hold a component");
            add_stage(std::unique_ptr<component>(std::move(p)));
        } else {
            static_assert(std::is_base_of_v<component, T>,
                          "pipeline: stages are components (by value or std::unique_ptr), integers (inbox "
                          "limits) or delivery_policy values");
            static_assert(!std::is_lvalue_reference_v<P>,
                          "pipeline: pass components by value (a temporary or std::move(c)); a component "
                          "cannot be copied");
            add_stage(std::make_unique<T>(std::move(p)));
        }
    }

    template <class T>
    struct is_unique_ptr : std::false_type {};
    template <class T, class D>
    struct is_unique_ptr<std::unique_ptr<T, D>> : std::true_type {};

    void add_stage(std::unique_ptr<component> c);
    void set_pending_limit(long long n);
    void check_trailing_options() const;

    void wire();
    void reap_stages();

    std::vector<component*> stages_; // in pipeline order; nullptr once removed
    std::vector<stage_options> options_;
    stage_options pending_;
    bool has_pending_ = false;
    bool circular_ = false;
};

} // namespace kamaelia
