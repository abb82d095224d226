// A group of schedulers, one thread each (Seastar's shard per core).
//
//   kamaelia::scheduler_group g(kamaelia::usable_cpus());
//   g.post(1, [] { /* builds and activates components on scheduler 1 */ });
//   g.start();                 // one thread per scheduler, run_forever()
//   ...
//   g.stop();                  // thread-safe; the destructor stops and joins
//
// A component lives on the scheduler it was activated on and never migrates,
// so nothing inside it needs a lock. Before start() the caller's thread may
// activate components on any member; once the threads run, work for a
// scheduler reaches it through post(). Services span the group: one
// registered with register_service() is asked by name (ask()) from every
// scheduler. Links span it too: component::link() between components
// activated on two different schedulers (made before start(), or from a
// thread that runs both) keeps the inbox bound, the four delivery policies
// (suspend parks the sender on its own thread until there is room) and the
// order of each sender's messages, with one wake-up of the receiving
// scheduler per batch (docs/ARCHITECTURE.md, "Cross-scheduler links").
#pragma once

#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/core/services.hpp>

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <thread>
#include <vector>

namespace kamaelia {

struct group_options {
    // Pin scheduler i's thread to the i-th CPU the process may use (modulo
    // their number). Off by default: on a shared machine the kernel knows
    // better.
    bool pin = false;
    // Each thread runs run() instead of run_forever(): it returns once its
    // scheduler has no component left (a daemon whose servers have drained).
    bool until_idle = false;
};

class scheduler_group {
public:
    // n schedulers (at least one), each with its own io_context, run queue,
    // timers and (per thread) slab.
    explicit scheduler_group(std::size_t n, group_options o = {});
    ~scheduler_group();
    scheduler_group(const scheduler_group&) = delete;
    scheduler_group& operator=(const scheduler_group&) = delete;

    std::size_t size() const noexcept { return scheds_.size(); }
    scheduler& at(std::size_t i) { return *scheds_.at(i); }
    scheduler& operator[](std::size_t i) { return *scheds_[i]; }

    // Starts one thread per scheduler, each in run_forever(). Once.
    void start();
    // Thread-safe: every scheduler's run_forever() returns soon.
    void stop();
    // Stops every scheduler and waits for its thread to return.
    void join();
    bool running() const noexcept { return !threads_.empty(); }
    // Thread-safe, once started: whether thread i has left its loop, and
    // waiting (without polling) until it has.
    bool finished(std::size_t i) const noexcept { return done_ && done_[i].load(std::memory_order_acquire); }
    void wait(std::size_t i) const noexcept;

    // Thread-safe: runs `fn` on scheduler i's thread.
    void post(std::size_t i, std::function<void()> fn) { scheds_.at(i)->post(std::move(fn)); }

    // One service for the whole group: `c`'s inbox, asked by name from any
    // scheduler. Call it on c's scheduler thread (from a post(), or before
    // start()). See service_directory::register_service.
    void register_service(std::string name, component& c, std::string inbox_name = "inbox",
                          std::size_t transit_limit = 0) {
        directory_.register_service(std::move(name), c, std::move(inbox_name), transit_limit);
    }
    service_directory& services() noexcept { return directory_; }

private:
    service_directory directory_; // first: it outlives the registries that consult it
    std::vector<std::unique_ptr<scheduler>> scheds_;
    std::vector<std::thread> threads_;
    std::unique_ptr<std::atomic<bool>[]> done_; // thread i has left run_forever()
    group_options opts_;
};

// How many CPUs this process may use: its affinity mask, capped by a cgroup
// v2 CPU quota (cpu.max) when there is one, so a container limited to two
// CPUs on a sixteen-core host says 2. At least 1. What `--threads auto` means.
std::size_t usable_cpus();

// The CPU count a cgroup v2 cpu.max line allows ("150000 100000" -> 2, rounded
// up), or nullopt for no limit ("max 100000") or a line that does not parse.
std::optional<std::size_t> cpu_quota_limit(std::string_view cpu_max) noexcept;

} // namespace kamaelia
