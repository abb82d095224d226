// Metrics in the Prometheus text exposition format, pulled, never pushed.
//
//   kamaelia::metrics::registry reg;
//   reg.add([&](metrics::exposition& x) {
//       x.counter("kamaelia_connections_total", "connections accepted", {{"server", "chat"}}, s.accepted_total());
//   });
//   std::string text = reg.scrape();      // what GET /metrics answers
//
// Components keep plain counters (the scheduler is single-threaded: no
// atomics on the hot path); a collector reads them only when scraped, on
// the scheduler thread. Samples of one family are grouped under one HELP
// and TYPE whichever collector gave them.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kamaelia::metrics {

using labels = std::vector<std::pair<std::string, std::string>>;

// Fixed buckets (upper bounds, seconds or whatever the unit); plain counts.
class histogram {
public:
    explicit histogram(std::vector<double> bounds = default_seconds());
    void observe(double v) noexcept;
    const std::vector<double>& bounds() const noexcept { return bounds_; }
    const std::vector<std::uint64_t>& counts() const noexcept { return counts_; } // per bucket, not cumulative
    std::uint64_t count() const noexcept { return count_; }
    double sum() const noexcept { return sum_; }
    // 100 µs .. 10 s
    static std::vector<double> default_seconds();

private:
    friend class shared_histogram;
    std::vector<double> bounds_;
    std::vector<std::uint64_t> counts_;
    std::uint64_t count_ = 0;
    double sum_ = 0;
};

// A histogram that components on several schedulers observe into (relaxed
// atomics, no lock) and a scrape reads as a plain histogram. A snapshot
// taken while others observe may hold an observation's bucket and not yet
// its sum; no counter is ever torn.
class shared_histogram {
public:
    explicit shared_histogram(std::vector<double> bounds = histogram::default_seconds());
    void observe(double v) noexcept;
    histogram snapshot() const;

private:
    std::vector<double> bounds_;
    std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;
    std::atomic<std::uint64_t> count_{0};
    std::atomic<double> sum_{0};
};

class exposition {
public:
    void counter(std::string_view name, std::string_view help, const labels& l, double v);
    void gauge(std::string_view name, std::string_view help, const labels& l, double v);
    void histogram(std::string_view name, std::string_view help, const labels& l, const metrics::histogram& h);
    std::string text() const;

private:
    struct family {
        std::string type, help;
        std::string samples;
    };
    family& fam(std::string_view name, std::string_view type, std::string_view help);
    std::map<std::string, family, std::less<>> families_;
};

// Label values escaped as the format wants (\\, \", \n).
std::string label_text(const labels& l, std::string_view extra_key = {}, std::string_view extra_value = {});
std::string number_text(double v);

class registry {
public:
    using collector = std::function<void(exposition&)>;
    // Returns an id for remove().
    std::size_t add(collector c);
    void remove(std::size_t id);
    void collect(exposition& x) const;
    std::string scrape() const;

private:
    std::vector<std::pair<std::size_t, collector>> collectors_;
    std::size_t next_ = 1;
};

} // namespace kamaelia::metrics
