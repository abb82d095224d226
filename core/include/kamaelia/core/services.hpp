// Named services: a (component, inbox) registered under a name, per
// scheduler (Axon's Co-ordinating Assistant Tracker, without the singleton).
// A client looks a service up and links one of its outboxes to it, or asks
// it with ask() (kamaelia/core/service.hpp), whose replies land in this
// registry's reply table.
//
// A service_directory spans several schedulers (a scheduler_group): a
// service registered there once is asked by name from any of them. An
// asker on another scheduler finds it on its first ask (one locked lookup)
// and keeps a remote entry in its own registry; its requests cross through
// the service's port (detail/service_port.hpp).
#pragma once

#include <kamaelia/core/component.hpp>
#include <kamaelia/core/detail/reply_table.hpp>

#include <memory>
#include <mutex>

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace kamaelia {

namespace detail {
class service_port;
}
class service_directory;

class service_registry {
public:
    struct service {
        component* comp; // null for a remote entry
        std::string inbox;
        kamaelia::inbox* box = nullptr; // where requests go (local entries)
        // A service registered in a directory: the door for other
        // schedulers (closed when the service goes).
        std::shared_ptr<detail::service_port> port;
        bool remote = false; // the service lives on another scheduler: ask through `port`
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
    // ask()'s lookup: find(), then the directory this registry belongs to
    // (remembered as a remote entry). nullptr if absent everywhere.
    const service* find_for_ask(std::string_view name);
    // The directory this registry consults on a miss (a group's). Set before
    // the scheduler's thread runs; the directory must outlive the registry.
    void attach(service_directory* d) noexcept { directory_ = d; }
    service_directory* directory() const noexcept { return directory_; }
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
    friend class service_directory;
    void close_port(service& s) noexcept;

    std::shared_ptr<detail::reply_table> replies_;
    std::map<std::string, service, std::less<>> services_;
    service_directory* directory_ = nullptr;
};

// Services for a group of schedulers: each registered once, on the
// scheduler of its component, and reachable by ask() from every scheduler
// whose registry is attached to this directory. Thread-safe.
class service_directory {
public:
    service_directory() = default;
    service_directory(const service_directory&) = delete;
    service_directory& operator=(const service_directory&) = delete;

    // Registers `c`'s inbox as `name` on c's scheduler (as
    // service_registry::register_service) and for every other scheduler.
    // Call it on c's scheduler thread, or before that thread runs. Remote
    // requests wait in a transit queue bounded by `transit_limit` (0: the
    // inbox's own limit) before a pump on c's scheduler sends them into the
    // inbox. Errors: service_already_exists, bad_inbox, bad_state (c not active).
    void register_service(std::string name, component& c, std::string inbox_name, std::size_t transit_limit = 0);

    // Any thread: the open port registered as `name`, or null.
    std::shared_ptr<detail::service_port> find(std::string_view name);
    std::vector<std::string> names();

private:
    std::mutex m_;
    std::map<std::string, std::shared_ptr<detail::service_port>, std::less<>> ports_;
};

// Registers `c`'s inbox as `name` in `group` when there is one (asked from
// every scheduler of it), else on c's scheduler alone: one call for code
// that runs under one scheduler or several (the daemon's --threads).
void register_service_in(service_directory* group, std::string name, component& c, std::string inbox_name);

} // namespace kamaelia
