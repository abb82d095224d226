// Control messages (Axon's Ipc and Kamaelia's IPC), as one typed value.
//
// Kamaelia's classes form a small hierarchy (socketShutdown is a
// producerFinished, serverShutdown a shutdownMicroprocess); one type with a
// kind keeps recv<ipc>() exact while preserving the two families a component
// reacts to: "finished" (clean end of data) and "shutdown" (stop now).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace kamaelia {

enum class ipc_kind : std::uint8_t {
    producer_finished,     // upstream is done: finish pending work, forward, end
    shutdown_microprocess, // stop now and pass it on
    socket_shutdown,       // the connection has closed (a producer_finished)
    server_shutdown,       // stop the listening server (a shutdown_microprocess)
    component_error,       // a component threw; text says what (ends like shutdown)
    link_failed,           // a link with policy "fail" overflowed and was cut
    protocol_error,        // the input broke the protocol; text is for the peer (a producer_finished)
    notify,                // anything else: a notification with text
};

struct ipc {
    ipc_kind kind = ipc_kind::notify;
    std::string text;       // reason, error text, or peer description
    std::uint32_t from = 0; // id of the component that sent it, 0 if unknown

    // The "finished" family: data is complete, drain then stop.
    bool finishes() const noexcept {
        return kind == ipc_kind::producer_finished || kind == ipc_kind::socket_shutdown ||
               kind == ipc_kind::protocol_error;
    }
    // The "stop now" family.
    bool stops() const noexcept {
        return kind == ipc_kind::shutdown_microprocess || kind == ipc_kind::server_shutdown ||
               kind == ipc_kind::component_error;
    }
    // Either way the receiver is meant to end.
    bool ends() const noexcept { return finishes() || stops(); }
};

inline ipc producer_finished(std::string text = {}) { return {ipc_kind::producer_finished, std::move(text)}; }
inline ipc shutdown_microprocess(std::string text = {}) { return {ipc_kind::shutdown_microprocess, std::move(text)}; }
inline ipc socket_shutdown(std::string text = {}) { return {ipc_kind::socket_shutdown, std::move(text)}; }
inline ipc server_shutdown(std::string text = {}) { return {ipc_kind::server_shutdown, std::move(text)}; }
inline ipc protocol_error(std::string text) { return {ipc_kind::protocol_error, std::move(text)}; }

std::string_view to_string(ipc_kind k) noexcept;

} // namespace kamaelia
