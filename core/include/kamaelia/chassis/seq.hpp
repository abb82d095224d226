// Seq: stages that run one after another, like the steps of a protocol.
//
//   auto state = std::make_shared<session>();
//   pipeline(lines(), seq(login(state), menu(state), [state] { return goodbye(state); }), printer());
//
// Kamaelia's Seq. While a stage runs, seq's inbox passes
// through to the stage's inbox and the stage's outbox surfaces on seq's
// outbox. A stage's signal is not connected, so the component after the seq
// is not shut down each time a stage ends. When the last stage has ended,
// seq sends producer_finished on signal and ends.
//
// Fixed from the original:
//  - control reaches the active stage. A shutdown_microprocess (or any stop)
//    stops the stage and the seq; a producer_finished / socket_shutdown is
//    passed to the stage, which finishes its input, and then the seq ends
//    without starting later stages (input left for them is dropped: its
//    sender has gone). Either way seq sends what it received on signal.
//    The original swallowed control, so a stage waiting for input leaked
//    forever when its connection went away.
//  - input the finished stage had not read moves on to the next stage,
//    ahead of anything that arrived in between: nothing typed ahead is lost.
//  - a stage that fails (throws) ends the seq; it sends component_error.
//
// Stages are components by value, std::unique_ptr, or factories (anything
// callable with no arguments returning a component or a unique_ptr to one),
// called only when their turn comes. State shared between stages is the
// caller's: give each stage a std::shared_ptr to one typed object.
#pragma once

#include <kamaelia/chassis/detail/end_state.hpp>
#include <kamaelia/core/component.hpp>

#include <functional>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

namespace kamaelia {

class seq : public component {
public:
    using factory = std::function<std::unique_ptr<component>()>;

    template <class... Stages>
    explicit seq(Stages&&... stages) {
        (add_stage(std::forward<Stages>(stages)), ...);
    }
    seq(seq&&) = default;

    // Adds a stage after the others (before activation).
    template <class S>
    seq& then(S&& stage) {
        add_stage(std::forward<S>(stage));
        return *this;
    }

    std::size_t size() const noexcept { return stages_.size(); }
    // Stages started so far.
    std::size_t started() const noexcept { return started_; }
    // The running stage, or nullptr.
    component* active() const noexcept { return active_; }

protected:
    task main() override;

private:
    struct stage {
        std::unique_ptr<component> ready;
        factory make;
    };

    template <class T>
    struct is_unique_ptr : std::false_type {};
    template <class T, class D>
    struct is_unique_ptr<std::unique_ptr<T, D>> : std::true_type {};

    template <class S>
    void add_stage(S&& s) {
        using T = std::remove_cvref_t<S>;
        if constexpr (std::is_base_of_v<component, T>) {
            static_assert(!std::is_lvalue_reference_v<S>,
                          "seq: pass components by value (a temporary or std::move(c))");
            push(stage{std::make_unique<T>(std::move(s)), {}});
        } else if constexpr (is_unique_ptr<T>::value) {
            static_assert(std::is_base_of_v<component, typename T::element_type>,
                          "seq: a std::unique_ptr stage must hold a component");
            push(stage{std::unique_ptr<component>(std::move(s)), {}});
        } else if constexpr (std::is_same_v<T, factory>) {
            push(stage{nullptr, std::forward<S>(s)});
        } else if constexpr (std::is_invocable_v<T&>) {
            static_assert(std::is_copy_constructible_v<T>,
                          "seq: a factory must be copyable (it is kept in a std::function)");
            using R = std::remove_cvref_t<std::invoke_result_t<T&>>;
            if constexpr (is_unique_ptr<R>::value) {
                static_assert(std::is_base_of_v<component, typename R::element_type>,
                              "seq: a factory must return a component or a std::unique_ptr to one");
                push(stage{nullptr, factory([f = T(std::forward<S>(s))]() mutable -> std::unique_ptr<component> {
                               return f();
                           })});
            } else {
                static_assert(std::is_base_of_v<component, R>,
                              "seq: a factory must return a component or a std::unique_ptr to one");
                push(stage{nullptr, factory([f = T(std::forward<S>(s))]() mutable -> std::unique_ptr<component> {
                               return std::make_unique<R>(f());
                           })});
            }
        } else {
            static_assert(std::is_base_of_v<component, T>,
                          "seq: stages are components (by value or std::unique_ptr) or factories");
        }
    }
    void push(stage s);

    std::unique_ptr<component> take_stage(std::size_t i);
    void start(component& c);
    void forward_control();
    void carry_over(component& finished_stage);

    std::vector<stage> stages_;
    std::size_t started_ = 0;
    component* active_ = nullptr;
    detail::end_state end_;
};

} // namespace kamaelia
