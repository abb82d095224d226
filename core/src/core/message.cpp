#include <kamaelia/core/ipc.hpp>
#include <kamaelia/core/message.hpp>

#include <cxxabi.h>

#include <cstdlib>
#include <memory>

namespace kamaelia {

namespace detail {

std::string demangle(const char* mangled) {
    int status = 0;
    std::unique_ptr<char, void (*)(void*)> out(abi::__cxa_demangle(mangled, nullptr, nullptr, &status), std::free);
    return status == 0 && out ? std::string(out.get()) : std::string(mangled);
}

} // namespace detail

std::string message::type_name() const { return vt_ ? detail::demangle(vt_->type_name()) : std::string("(empty)"); }

message message::share() {
    message copy;
    if (!vt_) return copy;
    if (vt_->mode != detail::storage_mode::shared_value) vt_->to_shared(*this);
    // The node's count is the first member of every shared_node<T>.
    auto* count = *reinterpret_cast<std::uint32_t**>(buf_);
    ++*count;
    std::memcpy(copy.buf_, buf_, sizeof(void*));
    copy.vt_ = vt_;
    return copy;
}

std::string_view to_string(ipc_kind k) noexcept {
    switch (k) {
    case ipc_kind::producer_finished: return "producer_finished";
    case ipc_kind::shutdown_microprocess: return "shutdown_microprocess";
    case ipc_kind::socket_shutdown: return "socket_shutdown";
    case ipc_kind::server_shutdown: return "server_shutdown";
    case ipc_kind::component_error: return "component_error";
    case ipc_kind::link_failed: return "link_failed";
    case ipc_kind::protocol_error: return "protocol_error";
    case ipc_kind::notify: return "notify";
    }
    return "unknown";
}

} // namespace kamaelia
