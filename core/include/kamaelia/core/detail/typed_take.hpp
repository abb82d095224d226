// recv<T>'s typing rules for a message taken out of a queue (threaded
// components and handles): T, shared<T> (no copy) or message (as is).
#pragma once

#include <kamaelia/core/message.hpp>

#include <optional>
#include <type_traits>

namespace kamaelia::detail {

template <class T>
void check_type(const message& m) {
    if constexpr (is_shared_v<T>) {
        if (!m.holds<typename T::element_type>()) m.throw_mismatch<T>();
    } else if constexpr (!std::is_same_v<T, message>) {
        if (!m.holds<T>()) m.throw_mismatch<T>();
    }
}

template <class T>
std::optional<T> unwrap(std::optional<message> m) {
    if (!m) return std::nullopt;
    if constexpr (is_shared_v<T>) {
        return m->template take_shared<typename T::element_type>();
    } else if constexpr (std::is_same_v<T, message>) {
        return std::move(*m);
    } else {
        return m->template take<T>();
    }
}

} // namespace kamaelia::detail
