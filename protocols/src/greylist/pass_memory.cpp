#include <kamaelia/greylist/pass_memory.hpp>

#include <algorithm>

namespace kamaelia::greylist {

pass_memory::pass_memory(options o) : opt_(std::move(o)) {}

std::int64_t pass_memory::now() const {
    auto tp = opt_.clock ? opt_.clock() : std::chrono::system_clock::now();
    return std::chrono::duration_cast<std::chrono::seconds>(tp.time_since_epoch()).count();
}

std::string pass_memory::key_of(const triplet& t) {
    std::string k;
    k.reserve(t.client_net.size() + t.sender.size() + t.recipient.size() + 2);
    // NUL cannot occur in an address: the three fields cannot run together.
    k.append(t.client_net).push_back('\0');
    k.append(t.sender).push_back('\0');
    k.append(t.recipient);
    return k;
}

std::optional<decision> pass_memory::recall(const request& r) {
    if (!enabled() || r.test_time != 0) return std::nullopt;
    std::string key = key_of(make_triplet(r.client_address, r.sender, r.recipient, opt_.ipv4_prefix, opt_.ipv6_prefix));
    std::string client = opt_.per_client ? canonical_address(r.client_address) : std::string();
    std::int64_t at = now();
    {
        std::lock_guard lk(mu_);
        auto c = by_client_.find(client);
        if (c == by_client_.end()) return std::nullopt;
        auto e = c->second.find(key);
        if (e == c->second.end()) return std::nullopt;
        if (at >= e->second.until) {
            c->second.erase(e);
            --entries_;
            if (c->second.empty()) by_client_.erase(c);
            return std::nullopt;
        }
        if (at < e->second.from) return std::nullopt; // the clock went back: the service decides
    }
    hits_.fetch_add(1, std::memory_order_relaxed);
    decision d;
    d.what = verdict::pass;
    d.reason = "pass"; // what judge_triplet answers for a passed row that needs no write
    return d;
}

void pass_memory::remember(const triplet& key, const std::string& client, std::int64_t stored_last, std::int64_t at,
                           std::int64_t refresh) {
    if (!enabled() || at < stored_last) return;
    std::int64_t until = std::min(stored_last + std::max<std::int64_t>(refresh, 0), at + opt_.ttl.count());
    if (until <= at) return;
    std::string k = key_of(key);
    std::lock_guard lk(mu_);
    if (entries_ >= opt_.capacity) {
        by_client_.clear();
        entries_ = 0;
    }
    auto [it, fresh] = by_client_[opt_.per_client ? client : std::string()].insert_or_assign(std::move(k),
                                                                                           entry{stored_last, until});
    (void)it;
    if (fresh) ++entries_;
}

void pass_memory::forget_client(const std::string& client) {
    if (!opt_.per_client) return; // no client rows: nothing of a client's can change
    std::lock_guard lk(mu_);
    auto c = by_client_.find(client);
    if (c == by_client_.end()) return;
    entries_ -= c->second.size();
    by_client_.erase(c);
}

void pass_memory::clear() {
    std::lock_guard lk(mu_);
    by_client_.clear();
    entries_ = 0;
}

std::size_t pass_memory::size() const {
    std::lock_guard lk(mu_);
    return entries_;
}

} // namespace kamaelia::greylist
