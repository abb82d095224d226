// message_predicate: a test on a message, as the router and tpipe use it.
//
// Written on the payload's type, it matches only messages of that type:
//   make_message_predicate([](int n) { return n > 0; })   // false for a string
// or on the message itself, for anything else:
//   make_message_predicate([](const message& m) { return m.is_shared(); })
// of_type<T>() matches every message holding a T (routing by type).
#pragma once

#include <kamaelia/core/message.hpp>
#include <kamaelia/util/callable_traits.hpp>

#include <functional>
#include <type_traits>
#include <utility>

namespace kamaelia {

using message_predicate = std::function<bool(const message&)>;

template <class F>
message_predicate make_message_predicate(F f) {
    if constexpr (std::is_invocable_r_v<bool, F&, const message&>) {
        return message_predicate(std::move(f));
    } else {
        using T = detail::arg_type_t<F>;
        return [f = std::move(f)](const message& m) mutable {
            const T* p = m.peek<T>();
            return p && static_cast<bool>(f(*p));
        };
    }
}

template <class T>
message_predicate of_type() {
    return [](const message& m) { return m.holds<T>(); };
}

} // namespace kamaelia
