// Graphline: named children wired by an explicit linkage map.
//
//   graphline g({
//           {{"SRC", "outbox"}, {"UPPER", "inbox"}},
//           {{"UPPER", "outbox"}, {"self", "outbox"}},
//           {{"SRC", "signal"}, {"UPPER", "control"}},
//       },
//       named("SRC", producer()), named("UPPER", upper()));
//
// Kamaelia's Graphline. Each entry links (source name, box) to
// (destination name, box); "self" or "" names the graphline itself:
//  - self as source: the graphline's inbox passes through to the child's
//    (an inbox→inbox link);
//  - self as destination: the child's outbox surfaces as the graphline's
//    (an outbox→outbox link).
// Boxes named on self that do not exist are created on this instance only
// (the original added them to the class, so every later Graphline had them),
// with the description of the child box they connect to. A link from self
// to self would connect two boxes of a component that never sends, and is
// refused; so is a name that is neither a child nor self (the original
// quietly took any unknown name for self).
//
// Shutdown, as in the original:
//  - unless the map links ("self","control"), every message arriving on the
//    graphline's control is forwarded to every running child whose control
//    is not the destination of some link;
//  - unless the map links something to ("self","signal"), the graphline
//    sends one end message on signal when its last child has ended: the
//    stop request it received (shutdown_microprocess...), else
//    component_error if a child failed, else the finish it received
//    (producer_finished, socket_shutdown), else producer_finished.
// A child that fails (throws) is reported by the core through its own
// signal; the graphline also tells every other running child to stop,
// except the one(s) that child's signal feeds (they already heard).
// Data reaching one of the graphline's own inboxes that leads nowhere (never
// linked, or its child has ended) is discarded.
//
// Children may also be added and linked before activation:
//   graphline g; g.add("A", a()).add("B", b()).connect({"A", "outbox"}, {"B", "inbox"});
#pragma once

#include <kamaelia/chassis/detail/end_state.hpp>
#include <kamaelia/core/component.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace kamaelia {

// One end of a graphline link: a child's name (or "self" / "") and a box.
struct box_ref {
    std::string component;
    std::string box;
    bool is_self() const noexcept { return component.empty() || component == "self"; }
};

struct graph_link {
    box_ref from;
    box_ref to;
    delivery_policy policy = delivery_policy::suspend;
    std::uint32_t limit = 0; // non-zero: the bound of the destination inbox (Kamaelia's boxsizes)
};

using linkage_list = std::vector<graph_link>;

// A child and its name, for graphline's constructor.
struct named_component {
    std::string name;
    std::unique_ptr<component> comp;
};

template <class C>
named_component named(std::string name, C&& c) {
    using T = std::remove_cvref_t<C>;
    if constexpr (std::is_base_of_v<component, T>) {
        static_assert(!std::is_lvalue_reference_v<C>, "named: pass a component by value (a temporary or std::move(c))");
        return {std::move(name), std::make_unique<T>(std::move(c))};
    } else {
        // a std::unique_ptr to a component
        return {std::move(name), std::unique_ptr<component>(std::move(c))};
    }
}

class graphline : public component {
public:
    graphline() = default;
    template <class... Named>
    requires(std::is_same_v<std::remove_cvref_t<Named>, named_component>&&...) explicit graphline(linkage_list links,
                                                                                                  Named&&... children) {
        (add(std::move(children.name), std::move(children.comp)), ...);
        for (auto& l : links) connect(std::move(l.from), std::move(l.to), l.policy, l.limit);
        validate();
    }
    graphline(graphline&&) = default;

    // Adds a named child (before activation).
    graphline& add(std::string name, std::unique_ptr<component> c);
    template <class C>
    requires std::is_base_of_v<component, std::remove_cvref_t<C>> graphline& add(std::string name, C&& c) {
        static_assert(!std::is_lvalue_reference_v<C>, "graphline::add: pass a component by value or unique_ptr");
        return add(std::move(name), std::unique_ptr<component>(std::make_unique<std::remove_cvref_t<C>>(std::move(c))));
    }
    // Adds a link (before activation); creates missing boxes on self.
    graphline& connect(box_ref from, box_ref to, delivery_policy p = delivery_policy::suspend, std::uint32_t limit = 0);

    // The child of that name, or nullptr (unknown, or ended and removed).
    component* child(std::string_view name) const noexcept;
    const linkage_list& linkages() const noexcept { return links_; }

protected:
    task main() override;

private:
    struct entry {
        std::string name;
        component* comp;             // nullptr once ended and removed
        bool control_linked = false; // some link feeds its control: no fan-out to it
    };

    entry* find(std::string_view name) noexcept;
    component& resolve(const box_ref& r);
    void validate() const;
    void wire();
    void fan_out_control();
    void discard_stranded_input();
    void reap();

    std::vector<entry> entries_;
    linkage_list links_;
    bool control_passthrough_ = false;
    bool signal_passthrough_ = false;
    detail::end_state end_;
};

} // namespace kamaelia
