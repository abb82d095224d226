// kamaelia::deliver: the one public way into a component from outside.
#include <kamaelia/core/component.hpp>
#include <kamaelia/core/deliver.hpp>
#include <kamaelia/core/detail/xlink.hpp>

#include <spdlog/spdlog.h>

namespace kamaelia {

bool deliver(component& c, box_name b, message m, delivery_policy policy) {
    inbox* target = c.in(b).final_inbox();
    if (!target) return false;
    if (target->remote()) {
        // The box passes on to a component on another scheduler: the link's
        // credit stands for the bound (suspend: past it, as below).
        bool forced = policy == delivery_policy::suspend;
        // "fail" refuses without cutting the link, as below.
        delivery_policy p = policy == delivery_policy::fail ? delivery_policy::drop_newest : policy;
        auto r = static_cast<detail::xlink_port*>(target)->push(m, p, forced, &c);
        if (r == detail::xlink_port::result::dropped && policy == delivery_policy::fail)
            spdlog::warn("deliver to {}: \"{}\" passes to another scheduler and its link is full, message refused",
                         c.name(), b.name);
        return r == detail::xlink_port::result::pushed;
    }
    if (target->full()) {
        switch (policy) {
        case delivery_policy::suspend: break; // past the bound
        case delivery_policy::drop_newest: return false;
        case delivery_policy::drop_oldest:
            // A box lowered below its size by set_limit stays full: one out, one in.
            if (!target->empty()) target->drop_front();
            break;
        case delivery_policy::fail:
            spdlog::warn("deliver to {}: \"{}\" is full ({} messages), message refused",
                         target->owner() ? target->owner()->name() : c.name(), b.name, target->size());
            return false;
        }
    }
    detail::inbox_access::push_forced(*target, std::move(m));
    return true;
}

} // namespace kamaelia
