// A component's anchor for Asio completion handlers.
//
// A handler may run after its component is gone (a socket closed by a
// destructor still delivers operation_aborted). Handlers capture the anchor,
// not the component: the component clears it when it goes, and a handler
// that finds it empty does nothing.
#pragma once

#include <kamaelia/core/component.hpp>

#include <memory>

namespace kamaelia {

class io_anchor {
public:
    explicit io_anchor(component& c) : state_(std::make_shared<component*>(&c)) {}
    ~io_anchor() { *state_ = nullptr; }
    io_anchor(const io_anchor&) = delete;
    io_anchor& operator=(const io_anchor&) = delete;

    // What handlers capture.
    std::shared_ptr<component*> token() const noexcept { return state_; }
    void clear() noexcept { *state_ = nullptr; }

    // Wakes the component behind a token, if it still exists.
    static void signal(const std::shared_ptr<component*>& t) noexcept {
        if (component* c = *t) c->signal_external();
    }

private:
    std::shared_ptr<component*> state_;
};

} // namespace kamaelia
