// Carousel: one child at a time, replaced on request.
//
//   carousel c([](message& m) { return std::make_unique<file_reader>(m.take<std::string>()); });
//   // "next" ← a file name: the current reader is stopped, a new one made
//
// Kamaelia's Carousel. Boxes: inbox (passed to the current
// child), next (what the factory builds the next child from), control;
// outbox (the current child's output), signal, requestNext (emits the
// string "NEXT" when the carousel wants something to do).
//
// With no child: a stop received (shutdown_microprocess...) is sent on
// signal and the carousel ends; else a message on "next" builds a child
// (inbox passed through, outbox surfaced, activated); else a finish
// received (producer_finished...) is sent on signal and the carousel ends.
// With a child running: a stop, a finish, or a new "next" sends the child a
// shutdown once (the message received, or shutdown_microprocess for
// "next") and waits for it to end; the "next" message is consumed only once
// the old child has gone. A finish received earlier also goes to every
// later child as it starts. When the child ends of its own accord and
// nothing is pending, "NEXT" goes out on requestNext; with
// make_first_request the carousel asks once at start.
//
// Other control messages go to the current child. The child's signal is
// not connected. Input reaching the carousel while no child runs waits (in
// order, bounded) for the next child. A child that fails (throws) ends the
// carousel, which sends component_error on signal.
#pragma once

#include <kamaelia/chassis/detail/end_state.hpp>
#include <kamaelia/core/component.hpp>

#include <functional>
#include <memory>
#include <utility>

namespace kamaelia {

class carousel : public component {
public:
    using factory = std::function<std::unique_ptr<component>(message&)>;

    explicit carousel(factory make, bool make_first_request = false);
    carousel(carousel&&) = default;

    // The running child, or nullptr.
    component* current() const noexcept { return child_; }
    // Children built so far.
    std::size_t built() const noexcept { return built_; }

protected:
    task main() override;

private:
    void read_control();
    void start(message& m);

    factory make_;
    bool first_request_;
    component* holder_ = nullptr; // keeps input while no child runs (see carousel.cpp)
    component* child_ = nullptr;
    bool told_ = false; // the child has been sent its shutdown
    std::size_t built_ = 0;
    detail::end_state end_;
};

} // namespace kamaelia
