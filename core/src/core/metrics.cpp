#include <kamaelia/core/metrics.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace kamaelia::metrics {

histogram::histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {
    std::sort(bounds_.begin(), bounds_.end());
}

std::vector<double> histogram::default_seconds() {
    return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

void histogram::observe(double v) noexcept {
    // A dozen bounds: a linear scan beats a binary search here.
    std::size_t i = 0;
    while (i < bounds_.size() && v > bounds_[i]) ++i;
    ++counts_[i];
    ++count_;
    sum_ += v;
}

shared_histogram::shared_histogram(std::vector<double> bounds) : bounds_(std::move(bounds)) {
    std::sort(bounds_.begin(), bounds_.end());
    counts_ = std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1);
}

void shared_histogram::observe(double v) noexcept {
    std::size_t i = 0;
    while (i < bounds_.size() && v > bounds_[i]) ++i;
    counts_[i].fetch_add(1, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
    sum_.fetch_add(v, std::memory_order_relaxed);
}

histogram shared_histogram::snapshot() const {
    histogram h(bounds_);
    std::uint64_t n = 0;
    for (std::size_t i = 0; i <= bounds_.size(); ++i) n += h.counts_[i] = counts_[i].load(std::memory_order_relaxed);
    // The count is the buckets' sum, so the exposition's +Inf bucket and
    // _count always agree.
    h.count_ = n;
    h.sum_ = sum_.load(std::memory_order_relaxed);
    return h;
}

std::string number_text(double v) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    if (v == std::floor(v) && std::fabs(v) < 1e15) {
        char b[32];
        std::snprintf(b, sizeof b, "%.0f", v);
        return b;
    }
    char b[32];
    std::snprintf(b, sizeof b, "%.9g", v);
    return b;
}

std::string label_text(const labels& l, std::string_view extra_key, std::string_view extra_value) {
    if (l.empty() && extra_key.empty()) return {};
    std::string out = "{";
    auto one = [&](std::string_view k, std::string_view v) {
        if (out.size() > 1) out += ',';
        out += k;
        out += "=\"";
        for (char c : v) {
            if (c == '\\')
                out += "\\\\";
            else if (c == '"')
                out += "\\\"";
            else if (c == '\n')
                out += "\\n";
            else
                out += c;
        }
        out += '"';
    };
    for (const auto& [k, v] : l) one(k, v);
    if (!extra_key.empty()) one(extra_key, extra_value);
    return out + "}";
}

exposition::family& exposition::fam(std::string_view name, std::string_view type, std::string_view help) {
    auto it = families_.find(name);
    if (it == families_.end())
        it = families_.emplace(std::string(name), family{std::string(type), std::string(help), {}}).first;
    return it->second;
}

void exposition::counter(std::string_view name, std::string_view help, const labels& l, double v) {
    // The family is named without _total (OpenMetrics); the sample carries it.
    std::string_view base = name;
    if (base.size() > 6 && base.substr(base.size() - 6) == "_total") base.remove_suffix(6);
    family& f = fam(base, "counter", help);
    f.samples += std::string(base) + "_total" + label_text(l) + " " + number_text(v) + "\n";
}

void exposition::gauge(std::string_view name, std::string_view help, const labels& l, double v) {
    family& f = fam(name, "gauge", help);
    f.samples += std::string(name) + label_text(l) + " " + number_text(v) + "\n";
}

void exposition::histogram(std::string_view name, std::string_view help, const labels& l, const metrics::histogram& h) {
    family& f = fam(name, "histogram", help);
    std::string n(name);
    std::uint64_t cum = 0;
    for (std::size_t i = 0; i < h.bounds().size(); ++i) {
        cum += h.counts()[i];
        f.samples += n + "_bucket" + label_text(l, "le", number_text(h.bounds()[i])) + " " + std::to_string(cum) + "\n";
    }
    f.samples += n + "_bucket" + label_text(l, "le", "+Inf") + " " + std::to_string(h.count()) + "\n";
    f.samples += n + "_sum" + label_text(l) + " " + number_text(h.sum()) + "\n";
    f.samples += n + "_count" + label_text(l) + " " + std::to_string(h.count()) + "\n";
}

std::string exposition::text() const {
    std::string out;
    for (const auto& [name, f] : families_) {
        out += "# HELP " + name + " " + f.help + "\n# TYPE " + name + " " + f.type + "\n" + f.samples;
    }
    return out;
}

std::size_t registry::add(collector c) {
    collectors_.emplace_back(next_, std::move(c));
    return next_++;
}

void registry::remove(std::size_t id) {
    std::erase_if(collectors_, [id](const auto& p) { return p.first == id; });
}

void registry::collect(exposition& x) const {
    for (const auto& [id, c] : collectors_) c(x);
}

std::string registry::scrape() const {
    exposition x;
    collect(x);
    return x.text();
}

} // namespace kamaelia::metrics
