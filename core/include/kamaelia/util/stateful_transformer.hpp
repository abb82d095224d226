// stateful_transformer: a transformer that keeps state between messages,
// in two shapes.
//
// Derive from it, overriding process() (and finish(), to emit what is
// still held when the input ends); emit() any number of outputs per input:
//
//   struct numberer : stateful_transformer<std::string, std::string> {
//       int n = 0;
//       void process(std::string line) override { emit(std::to_string(++n) + " " + line); }
//   };
//
// Or hand over a callable object that keeps its state in its members:
//
//   struct running_total { int sum = 0; int operator()(int n) { return sum += n; } };
//   auto t = make_stateful_transformer(running_total{});
//
// Its operator() returns an output, a std::optional (nullopt: none) or a
// std::vector (several); an optional finish() member returns the same kinds
// and is emitted when the input ends.
//
// Outputs are sent in order, each waiting for room. End rules as for
// pure_transformer: producer_finished drains the inbox, runs finish() and
// ends; shutdown_microprocess ends at once (finish() is not run); the end
// message goes out of "signal", as do other control messages.
#pragma once

#include <kamaelia/core/component.hpp>
#include <kamaelia/util/callable_traits.hpp>
#include <kamaelia/util/control_watch.hpp>

#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace kamaelia {

template <class In, class Out>
class stateful_transformer : public component {
public:
    using input_type = In;
    using output_type = Out;

    std::string type_name() const override { return "stateful_transformer"; }

protected:
    // One input; emit() what it produces.
    virtual void process(In value) = 0;
    // The input has ended (producer_finished): emit what is still held.
    virtual void finish() {}
    void emit(Out v) { pending_.push_back(std::move(v)); }

    task main() override {
        control_watch cw;
        for (;;) {
            cw.poll(*this);
            if (cw.stopping()) break;
            while (auto v = recv<In>("inbox")) {
                process(std::move(*v));
                for (std::size_t i = 0; i < pending_.size(); ++i) co_await send(std::move(pending_[i]), "outbox");
                pending_.clear();
            }
            if (cw.finishing()) {
                finish();
                for (std::size_t i = 0; i < pending_.size(); ++i) co_await send(std::move(pending_[i]), "outbox");
                pending_.clear();
                break;
            }
            co_await wait_any();
        }
        cw.forward_end(*this);
    }

private:
    std::vector<Out> pending_; // outputs of the current input, sent in order
};

namespace detail {

template <class R>
struct unwrap_output {
    using type = R;
};
template <class R>
struct unwrap_output<std::optional<R>> {
    using type = R;
};
template <class R>
struct unwrap_output<std::vector<R>> {
    using type = R;
};
template <class F, class In>
using stateful_output_t = typename unwrap_output<std::remove_cvref_t<std::invoke_result_t<F&, In&&>>>::type;

} // namespace detail

// A callable object with state, as a stateful_transformer.
template <class In, class F>
class stateful_function : public stateful_transformer<In, detail::stateful_output_t<F, In>> {
public:
    using output_type = detail::stateful_output_t<F, In>;

    explicit stateful_function(F f) : f_(std::move(f)) {}
    stateful_function(stateful_function&&) = default;

    // The callable (and its state).
    F& function() noexcept { return f_; }
    const F& function() const noexcept { return f_; }

protected:
    void process(In v) override { put(std::invoke(f_, std::move(v))); }
    void finish() override {
        if constexpr (requires(F & f) { f.finish(); }) put(f_.finish());
    }

private:
    template <class R>
    void put(R&& r) {
        using T = std::remove_cvref_t<R>;
        if constexpr (detail::is_optional<T>::value) {
            if (r) this->emit(std::move(*r));
        } else if constexpr (std::is_same_v<T, std::vector<output_type>>) {
            for (auto& x : r) this->emit(std::move(x));
        } else {
            this->emit(std::forward<R>(r));
        }
    }

    F f_;
};

template <class F>
stateful_function<detail::arg_type_t<F>, F> make_stateful_transformer(F f) {
    return stateful_function<detail::arg_type_t<F>, F>(std::move(f));
}
template <class In, class F>
stateful_function<In, F> make_stateful_transformer(F f) {
    return stateful_function<In, F>(std::move(f));
}

} // namespace kamaelia
