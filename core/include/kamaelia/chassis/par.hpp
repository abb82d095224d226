// PAR: children that run side by side; their outputs merge.
//
//   pipeline(par(ticker("a"), ticker("b")), printer()).run();
//
// Kamaelia's PAR. Every child's outbox feeds par's outbox
// (fan-in). Every control message reaching par goes to every running child.
// Data reaching par's inbox goes to every running child too (broadcast; the
// original's docstring promised this but dropped the data): each child
// gets the same immutable payload through message::share(), so nothing is
// copied on the way. A child that takes it with recv<T>() gets its own copy
// while others still hold the payload (the last taker gets the original
// moved); recv<shared<T>>() takes it without copying, which also works for
// types that cannot be copied. Broadcasting is flow-controlled: par waits
// while a child's inbox is full, so a slow child slows par's input.
//
// Fixed from the original: the children's own end messages do not leak out
// one by one (the first child to finish used to shut down whatever came
// after par). Par sends one message on signal when all its children have
// ended: the stop it received (shutdown_microprocess...), else
// component_error if a child failed, else the finish it received, else
// producer_finished. A child that fails (throws) makes par tell the other
// children to stop.
#pragma once

#include <kamaelia/chassis/detail/end_state.hpp>
#include <kamaelia/core/component.hpp>

#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace kamaelia {

class par : public component {
public:
    template <class... Children>
    explicit par(Children&&... children) {
        (add_branch(std::forward<Children>(children)), ...);
    }
    par(par&&) = default;

    std::size_t size() const noexcept { return branches_.size(); }

protected:
    task main() override;

private:
    template <class T>
    struct is_unique_ptr : std::false_type {};
    template <class T, class D>
    struct is_unique_ptr<std::unique_ptr<T, D>> : std::true_type {};

    template <class C>
    void add_branch(C&& c) {
        using T = std::remove_cvref_t<C>;
        if constexpr (is_unique_ptr<T>::value) {
            static_assert(std::is_base_of_v<component, typename T::element_type>,
                          "par: a std::unique_ptr child must hold a component");
            add_branch_ptr(std::unique_ptr<component>(std::move(c)));
        } else {
            static_assert(std::is_base_of_v<component, T>,
                          "par: children are components (by value or std::unique_ptr)");
            static_assert(!std::is_lvalue_reference_v<C>,
                          "par: pass components by value (a temporary or std::move(c))");
            add_branch_ptr(std::make_unique<T>(std::move(c)));
        }
    }
    void add_branch_ptr(std::unique_ptr<component> c);

    struct branch {
        component* holder; // our child, which owns the user's component (see par.cpp)
        std::string feed;  // our outbox linked to it
    };

    void wire();
    void forward_control();
    void reap();
    bool running(const branch& b) const noexcept;

    std::vector<branch> branches_;
    detail::end_state end_;
};

} // namespace kamaelia
