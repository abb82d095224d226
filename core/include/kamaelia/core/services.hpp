// Named services: a (component, inbox) registered under a name, per
// scheduler (Axon's Co-ordinating Assistant Tracker, without the singleton).
// A client looks a service up and links one of its outboxes to it.
#pragma once

#include <kamaelia/core/component.hpp>

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace kamaelia {

class service_registry {
public:
    struct service {
        component* comp;
        std::string inbox;
    };

    // Errors: service_already_exists, bad_component (null), bad_inbox (no
    // such inbox on the component).
    void register_service(std::string name, component& c, std::string inbox_name);
    // unknown_service if absent.
    service retrieve(std::string_view name) const;
    bool has(std::string_view name) const noexcept;
    // multiple_service_deletion if absent.
    void deregister(std::string_view name);
    // Removes every service provided by `c` (called when it goes away).
    void deregister_all(const component& c) noexcept;
    std::vector<std::string> names() const;

private:
    std::map<std::string, service, std::less<>> services_;
};

} // namespace kamaelia
