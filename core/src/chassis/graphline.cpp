#include <kamaelia/chassis/graphline.hpp>
#include <kamaelia/core/scheduler.hpp>

#include "common.hpp"

#include <spdlog/spdlog.h>

#include <string>

namespace kamaelia {

namespace {

std::string describe(const box_ref& r) {
    return "(\"" + (r.is_self() ? std::string("self") : r.component) + "\", \"" + r.box + "\")";
}

std::string description_of(component& c, std::string_view box) {
    for (auto& b : c.boxes())
        if (b.name == box) return std::string(b.description);
    return {};
}

} // namespace

graphline::entry* graphline::find(std::string_view name) noexcept {
    for (auto& e : entries_)
        if (e.name == name) return &e;
    return nullptr;
}

component* graphline::child(std::string_view name) const noexcept {
    for (auto& e : entries_)
        if (e.name == name) return e.comp;
    return nullptr;
}

graphline& graphline::add(std::string name, std::unique_ptr<component> c) {
    if (state() != component_state::created) throw bad_state("graphline::add: " + this->name() + " is already running");
    if (!c) throw bad_component("graphline: child \"" + name + "\" is null");
    if (name.empty() || name == "self") throw bad_component("graphline: \"" + name + "\" names the graphline itself");
    if (find(name)) throw bad_component("graphline: two children named \"" + name + "\"");
    component& ref = add_child(std::move(c));
    entries_.push_back({std::move(name), &ref});
    return *this;
}

graphline& graphline::connect(box_ref from, box_ref to, delivery_policy p, std::uint32_t limit) {
    if (state() != component_state::created) throw bad_state("graphline::connect: " + name() + " is already running");
    if (from.is_self() && to.is_self())
        throw bad_state("graphline: " + describe(from) + " → " + describe(to) +
                        " links the graphline to itself, which never sends");
    for (auto& l : links_)
        if (l.from.is_self() == from.is_self() && (from.is_self() || l.from.component == from.component) &&
            l.from.box == from.box)
            throw box_already_linked("graphline: " + describe(from) +
                                     " is linked twice; a box has one outgoing link (use a splitter to fan out)");
    // Boxes named on self are created here, on this instance only.
    if (from.is_self() && !has_box(box_name(std::string_view(from.box)))) {
        entry* e = find(to.component);
        add_inbox(from.box, e ? description_of(*e->comp, to.box) : std::string());
    }
    if (to.is_self() && !has_box(box_name(std::string_view(to.box)))) {
        entry* e = find(from.component);
        add_outbox(to.box, e ? description_of(*e->comp, from.box) : std::string());
    }
    links_.push_back({std::move(from), std::move(to), p, limit});
    return *this;
}

void graphline::validate() const {
    auto known = [&](const box_ref& r) {
        if (r.is_self()) return;
        for (auto& e : entries_)
            if (e.name == r.component) return;
        throw bad_component("graphline: " + describe(r) +
                            " names no child (children are named when added; "
                            "\"self\" or \"\" is the graphline)");
    };
    for (auto& l : links_) {
        known(l.from);
        known(l.to);
    }
}

component& graphline::resolve(const box_ref& r) {
    if (r.is_self()) return *this;
    return *find(r.component)->comp;
}

void graphline::wire() {
    validate(); // links added after construction are checked before anything is linked
    for (auto& l : links_) {
        component& src = resolve(l.from);
        component& dst = resolve(l.to);
        if (l.limit) dst.in(box_name(std::string_view(l.to.box))).set_limit(l.limit);
        link({src, box_name(std::string_view(l.from.box))}, {dst, box_name(std::string_view(l.to.box))}, l.policy);
        if (l.from.is_self() && l.from.box == "control") control_passthrough_ = true;
        if (l.to.is_self() && l.to.box == "signal") signal_passthrough_ = true;
        if (!l.to.is_self() && l.to.box == "control") find(l.to.component)->control_linked = true;
    }
}

void graphline::fan_out_control() {
    while (auto m = recv_message("control")) {
        if (const ipc* i = m->peek<ipc>()) end_.note(*i);
        for (auto& e : entries_)
            if (e.comp && !e.control_linked && !e.comp->finished())
                detail::push_control(*e.comp, detail::duplicate(*m));
    }
}

// Our own inboxes that lead nowhere (never linked, or their child ended and
// took the link with it) keep what arrives: nobody will read it.
void graphline::discard_stranded_input() {
    for (auto& b : boxes()) {
        if (!b.b->is_inbox() || b.b->link()) continue;
        auto& ib = static_cast<inbox&>(*b.b);
        if (ib.empty()) continue;
        std::size_t n = detail::discard_inbox(*this, box_name(b.name));
        spdlog::debug("{}: discarded {} message(s) reaching \"{}\", which leads nowhere", name(), n, b.name);
    }
}

void graphline::reap() {
    for (auto& e : entries_) {
        component* c = e.comp;
        if (!c || !c->finished()) continue;
        if (c->failed()) {
            end_.note_failure(*c);
            // Who hears of the failure through the failed child's signal.
            std::vector<std::string_view> told;
            for (auto& l : links_)
                if (!l.from.is_self() && l.from.component == e.name && l.from.box == "signal" && !l.to.is_self())
                    told.push_back(l.to.component);
            for (auto& o : entries_) {
                if (!o.comp || o.comp == c || o.comp->finished()) continue;
                bool heard = false;
                for (auto t : told) heard = heard || t == o.name;
                if (!heard) detail::push_control(*o.comp, shutdown_microprocess("child " + e.name + " failed"));
            }
        }
        e.comp = nullptr;
        remove_child(*c);
    }
}

task graphline::main() {
    wire();
    for (auto& e : entries_) e.comp->activate(*sched());
    for (;;) {
        if (!control_passthrough_) fan_out_control();
        discard_stranded_input();
        reap();
        bool any = false;
        for (auto& e : entries_) any = any || e.comp;
        if (!any) break;
        co_await wait(ev_inbox | ev_children);
    }
    if (!signal_passthrough_) send_forced(message(end_.result(id())), "signal");
}

} // namespace kamaelia
