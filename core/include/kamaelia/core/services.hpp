// Named services: a (component, inbox) registered under a name, per
// scheduler (Axon's Co-ordinating Assistant Tracker, without the singleton).
// A client looks a service up and links one of its outboxes to it, or asks
// it with ask() (kamaelia/core/service.hpp), whose replies land in this
// registry's reply table.
#pragma once

#include <kamaelia/core/component.hpp>
#include <kamaelia/core/detail/reply_table.hpp>

#include <memory>

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
        kamaelia::inbox* box = nullptr; // where requests go
    };

    service_registry();
    ~service_registry();
    service_registry(const service_registry&) = delete;
    service_registry& operator=(const service_registry&) = delete;

    // Errors: service_already_exists, bad_component (null), bad_inbox (no
    // such inbox on the component).
    void register_service(std::string name, component& c, std::string inbox_name);
    // unknown_service if absent.
    service retrieve(std::string_view name) const;
    bool has(std::string_view name) const noexcept;
    // nullptr if absent (no exception on the ask path).
    const service* find(std::string_view name) const noexcept;
    // multiple_service_deletion if absent.
    void deregister(std::string_view name);
    // Removes every service provided by `c` (called when it goes away).
    void deregister_all(const component& c) noexcept;
    std::vector<std::string> names() const;
    // A component has finished: its services go, and the requests still
    // queued in their inboxes are answered service_ended now (not when the
    // object is finally deleted).
    void component_finished(component& c) noexcept;

    // Where ask()'s replies land (shared: a request in flight keeps it).
    detail::reply_table& replies() noexcept { return *replies_; }

private:
    std::shared_ptr<detail::reply_table> replies_;
    std::map<std::string, service, std::less<>> services_;
};

} // namespace kamaelia
