#include <kamaelia/core/services.hpp>

namespace kamaelia {

void service_registry::register_service(std::string name, component& c, std::string inbox_name) {
    if (services_.count(name)) throw service_already_exists("service \"" + name + "\" is already registered");
    if (!c.has_box(box_name(std::string_view(inbox_name))) || !c.find_box(box_name(std::string_view(inbox_name))).is_inbox())
        throw bad_inbox("service \"" + name + "\": " + c.name() + " has no inbox \"" + inbox_name + "\"");
    services_.emplace(std::move(name), service{&c, std::move(inbox_name)});
}

service_registry::service service_registry::retrieve(std::string_view name) const {
    auto it = services_.find(name);
    if (it == services_.end()) throw unknown_service("no service \"" + std::string(name) + "\"");
    return it->second;
}

bool service_registry::has(std::string_view name) const noexcept { return services_.find(name) != services_.end(); }

void service_registry::deregister(std::string_view name) {
    auto it = services_.find(name);
    if (it == services_.end())
        throw multiple_service_deletion("service \"" + std::string(name) + "\" is not registered");
    services_.erase(it);
}

void service_registry::deregister_all(const component& c) noexcept {
    for (auto it = services_.begin(); it != services_.end();) {
        if (it->second.comp == &c) {
            it = services_.erase(it);
        } else {
            ++it;
        }
    }
}

std::vector<std::string> service_registry::names() const {
    std::vector<std::string> v;
    for (auto& [k, _] : services_) v.push_back(k);
    return v;
}

} // namespace kamaelia
