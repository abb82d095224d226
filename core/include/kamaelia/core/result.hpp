// The answer of a service: a value, or an error saying why there is none.
//
//   auto r = co_await ask("greylist", check{...});
//   if (!r) log(r.error().text);      // unknown service, full, timed out, ended ...
//   else use(*r);
//
// C++20 has no std::expected; this is the small part of it we need.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace kamaelia {

enum class service_errc : std::uint8_t {
    unknown_service, // no service registered under that name
    full,            // the service's inbox was full and the asker asked not to wait
    timeout,         // no answer within the time the asker gave
    service_ended,   // the service ended (or dropped the request) without answering
    cancelled,       // the asker was told to stop while it waited for room, or its cancel_if gave up
    failed,          // the service answered with an error (its text says which)
};

std::string_view to_string(service_errc e) noexcept;

struct service_error {
    service_errc code = service_errc::failed;
    std::string text;
};

template <class T>
class result {
public:
    result(T v) : v_(std::in_place_index<0>, std::move(v)) {}
    result(service_error e) : v_(std::in_place_index<1>, std::move(e)) {}

    bool ok() const noexcept { return v_.index() == 0; }
    explicit operator bool() const noexcept { return ok(); }
    T& value() & { return std::get<0>(v_); }
    const T& value() const& { return std::get<0>(v_); }
    T&& value() && { return std::get<0>(std::move(v_)); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    const service_error& error() const { return std::get<1>(v_); }

private:
    std::variant<T, service_error> v_;
};

} // namespace kamaelia
