// The argument and result types of a one-argument callable (a lambda, a
// function object, a function pointer), so components built around a
// function can deduce the message type they receive:
//   pure_transformer([](std::string s) { ... })   // receives std::string
// Generic lambdas have no single argument type: name it explicitly there.
#pragma once

#include <optional>
#include <type_traits>

namespace kamaelia::detail {

template <class F>
struct callable_traits : callable_traits<decltype(&F::operator())> {};

template <class R, class A>
struct callable_traits<R (*)(A)> {
    using arg = A;
    using result = R;
};
template <class R, class A>
struct callable_traits<R (*)(A) noexcept> : callable_traits<R (*)(A)> {};
template <class R, class A>
struct callable_traits<R(A)> : callable_traits<R (*)(A)> {};
template <class C, class R, class A>
struct callable_traits<R (C::*)(A)> : callable_traits<R (*)(A)> {};
template <class C, class R, class A>
struct callable_traits<R (C::*)(A) const> : callable_traits<R (*)(A)> {};
template <class C, class R, class A>
struct callable_traits<R (C::*)(A) noexcept> : callable_traits<R (*)(A)> {};
template <class C, class R, class A>
struct callable_traits<R (C::*)(A) const noexcept> : callable_traits<R (*)(A)> {};

// The value type a callable takes (cv and references removed).
template <class F>
using arg_type_t = std::remove_cvref_t<typename callable_traits<std::remove_cvref_t<F>>::arg>;

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};

} // namespace kamaelia::detail
