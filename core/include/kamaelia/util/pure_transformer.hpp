// pure_transformer: a function applied to every message (Kamaelia's
// PureTransformer): a map and a filter in one.
//
//   pure_transformer upper([](std::string s) { for (auto& c : s) c = std::toupper(c); return s; });
//   pure_transformer evens([](int n) -> std::optional<int> { if (n % 2) return std::nullopt; return n; });
//
// The input type is the function's parameter type (for a generic lambda,
// name it: make_pure_transformer<int>(f)); a message of another type is a
// type_mismatch error, reported like any failure. The function returns the
// output value, or a std::optional of it, where std::nullopt sends nothing.
//
// Ends on producer_finished (after the inbox is drained) AND on
// shutdown_microprocess (at once) — the original ignored the latter — and
// passes the end message on out of "signal". Other control messages are
// passed on out of "signal" too.
#pragma once

#include <kamaelia/core/component.hpp>
#include <kamaelia/util/callable_traits.hpp>
#include <kamaelia/util/control_watch.hpp>

#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

namespace kamaelia {

template <class In, class F>
class pure_transformer : public component {
public:
    using input_type = In;
    using result_type = std::invoke_result_t<F&, In&&>;
    static_assert(!std::is_void_v<result_type>, "pure_transformer: the function must return a value or std::optional");

    explicit pure_transformer(F f) : f_(std::move(f)) {}
    pure_transformer(pure_transformer&&) = default;

    std::string type_name() const override { return "pure_transformer"; }

protected:
    task main() override {
        control_watch cw;
        for (;;) {
            cw.poll(*this);
            if (cw.stopping()) break;
            while (auto v = recv<In>("inbox")) {
                if constexpr (detail::is_optional<std::remove_cvref_t<result_type>>::value) {
                    auto out = std::invoke(f_, std::move(*v));
                    if (out) co_await send(std::move(*out), "outbox");
                } else {
                    auto out = std::invoke(f_, std::move(*v));
                    co_await send(std::move(out), "outbox");
                }
            }
            if (cw.finishing()) break;
            co_await wait_any();
        }
        cw.forward_end(*this);
    }

private:
    F f_;
};

template <class F>
pure_transformer(F) -> pure_transformer<detail::arg_type_t<F>, F>;

// For callables whose parameter type cannot be deduced (generic lambdas).
template <class In, class F>
pure_transformer<In, F> make_pure_transformer(F f) {
    return pure_transformer<In, F>(std::move(f));
}

} // namespace kamaelia
