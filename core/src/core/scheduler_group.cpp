#include <kamaelia/core/scheduler_group.hpp>

#include <kamaelia/core/errors.hpp>
#include <kamaelia/util/text.hpp>

#include <spdlog/spdlog.h>

#include <charconv>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>

#include <pthread.h>
#include <sched.h>

namespace kamaelia {

namespace {

// The CPUs in this process's affinity mask, in order.
std::vector<int> allowed_cpus() {
    std::vector<int> out;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        for (int c = 0; c < CPU_SETSIZE; ++c)
            if (CPU_ISSET(c, &set)) out.push_back(c);
    }
    if (out.empty()) {
        unsigned n = std::thread::hardware_concurrency();
        for (unsigned c = 0; c < (n ? n : 1); ++c) out.push_back(static_cast<int>(c));
    }
    return out;
}

// The cgroup v2 directory of this process ("0::/path" in /proc/self/cgroup).
std::string own_cgroup_dir() {
    std::ifstream in("/proc/self/cgroup");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("0::", 0) == 0) return "/sys/fs/cgroup" + line.substr(3);
    }
    return "/sys/fs/cgroup";
}

} // namespace

std::optional<std::size_t> cpu_quota_limit(std::string_view cpu_max) noexcept {
    cpu_max = trim(cpu_max, " \t\r\n");
    auto sp = cpu_max.find(' ');
    if (sp == std::string_view::npos) return std::nullopt;
    std::string_view quota = cpu_max.substr(0, sp);
    std::string_view period = trim(cpu_max.substr(sp + 1), " ");
    if (quota == "max") return std::nullopt;
    unsigned long long q = 0, p = 0;
    auto r1 = std::from_chars(quota.data(), quota.data() + quota.size(), q);
    auto r2 = std::from_chars(period.data(), period.data() + period.size(), p);
    if (r1.ec != std::errc() || r1.ptr != quota.data() + quota.size()) return std::nullopt;
    if (r2.ec != std::errc() || r2.ptr != period.data() + period.size()) return std::nullopt;
    if (q == 0 || p == 0) return std::nullopt;
    return static_cast<std::size_t>((q + p - 1) / p);
}

std::size_t usable_cpus() {
    std::size_t n = allowed_cpus().size();
    // The quota of this cgroup and of every parent up to the root: the
    // tightest one wins.
    std::string dir = own_cgroup_dir();
    for (;;) {
        std::ifstream f(dir + "/cpu.max");
        std::string line;
        if (f && std::getline(f, line)) {
            if (auto q = cpu_quota_limit(line); q && *q < n) n = *q;
        }
        if (dir == "/sys/fs/cgroup" || dir.size() <= 14) break;
        dir.erase(dir.rfind('/'));
    }
    return n ? n : 1;
}

scheduler_group::scheduler_group(std::size_t n, group_options o) : opts_(o) {
    if (n == 0) n = 1;
    scheds_.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
        scheds_.push_back(std::make_unique<scheduler>());
        scheds_.back()->services().attach(&directory_);
    }
}

scheduler_group::~scheduler_group() {
    stop();
    join();
}

void scheduler_group::start() {
    if (!threads_.empty()) throw bad_state("scheduler_group: already started");
    std::vector<int> cpus = opts_.pin ? allowed_cpus() : std::vector<int>{};
    threads_.reserve(scheds_.size());
    done_ = std::make_unique<std::atomic<bool>[]>(scheds_.size());
    for (std::size_t i = 0; i < scheds_.size(); ++i) {
        scheduler* s = scheds_[i].get();
        std::atomic<bool>* done = &done_[i];
        threads_.emplace_back([s, done, idle = opts_.until_idle] {
            if (idle) {
                s->run();
            } else {
                s->run_forever();
            }
            done->store(true, std::memory_order_release);
            done->notify_all();
        });
        std::string name = "kamaelia-s" + std::to_string(i);
        pthread_setname_np(threads_.back().native_handle(), name.substr(0, 15).c_str());
        if (!cpus.empty()) {
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET(cpus[i % cpus.size()], &set);
            if (pthread_setaffinity_np(threads_.back().native_handle(), sizeof set, &set) != 0)
                spdlog::warn("scheduler {}: cannot pin to CPU {}", i, cpus[i % cpus.size()]);
        }
    }
}

void scheduler_group::wait(std::size_t i) const noexcept {
    if (!done_) return;
    done_[i].wait(false, std::memory_order_acquire);
}

void scheduler_group::stop() {
    for (auto& s : scheds_) s->stop();
}

void scheduler_group::join() {
    for (std::size_t i = 0; i < threads_.size(); ++i) {
        if (!threads_[i].joinable()) continue;
        // stop() again until the loop has returned: a stop() that lands
        // between two of the loop's checks is otherwise only seen at the
        // next wake-up.
        while (!done_[i].load(std::memory_order_acquire)) {
            scheds_[i]->stop();
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        threads_[i].join();
    }
    threads_.clear();
}

} // namespace kamaelia
