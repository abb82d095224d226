#include <kamaelia/bbs/login_throttle.hpp>
#include <kamaelia/bbs/store.hpp>

namespace kamaelia::bbs {

login_throttle::login_throttle(limits l, const clock_source& clock) : limits_(l), clock_(clock) {
    if (limits_.max_throttled == 0) limits_.max_throttled = 1;
}

std::string login_throttle::key(std::string_view name, std::string_view address) {
    std::string k = user_key(name);
    k += '\n';
    k += address;
    return k;
}

void login_throttle::erase(map::iterator it) {
    (it->second.locked ? locked_ : counting_).erase(it->second.age);
    entries_.erase(it);
}

void login_throttle::drop_passed(age_list& l, time_point now) {
    // Each list is in the order its entries' windows end (window starts in
    // counting_; near enough in locked_, which a lookup also prunes): the
    // passed ones are at the front, so this is amortised O(1).
    while (!l.empty()) {
        auto it = entries_.find(l.front());
        if (now - it->second.first < limits_.window) return;
        erase(it);
    }
}

void login_throttle::make_room(time_point now) {
    drop_passed(counting_, now);
    drop_passed(locked_, now);
    while (entries_.size() >= limits_.max_throttled)
        erase(entries_.find(counting_.empty() ? locked_.front() : counting_.front()));
}

duration login_throttle::locked_for(const std::string& key) {
    auto it = entries_.find(key);
    if (it == entries_.end() || !it->second.locked) return duration::zero();
    duration left = it->second.first + limits_.window - clock_.now();
    if (left <= duration::zero()) {
        erase(it);
        return duration::zero();
    }
    return left;
}

bool login_throttle::note_failure(const std::string& key) {
    const time_point now = clock_.now();
    auto it = entries_.find(key);
    if (it != entries_.end() && now - it->second.first >= limits_.window) {
        erase(it); // its window has passed: a new one starts
        it = entries_.end();
    }
    if (it == entries_.end()) {
        make_room(now);
        counting_.push_back(key);
        it = entries_.emplace(key, entry{0, now, false, std::prev(counting_.end())}).first;
    }
    entry& e = it->second;
    if (e.locked || ++e.count < limits_.max_failures) return false;
    e.locked = true;
    locked_.splice(locked_.end(), counting_, e.age); // iterators stay valid
    return true;
}

void login_throttle::note_success(const std::string& key) {
    if (auto it = entries_.find(key); it != entries_.end()) erase(it);
}

} // namespace kamaelia::bbs
