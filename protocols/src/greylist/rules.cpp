#include <kamaelia/greylist/rules.hpp>

namespace kamaelia::greylist {

triplet_outcome judge_triplet(const std::optional<triplet_row>& row, std::int64_t now, const timing& t) {
    triplet_outcome o;
    bool known = row.has_value() && now - row->last <= t.max_age;
    triplet_row r = known ? *row : triplet_row{now, now};
    if (known && has_passed(r, t)) {
        // The pass memory: refreshed on use.
        o.write = {r.first, now};
        o.store = now - r.last >= t.refresh || now < r.last;
        o.answer.what = verdict::pass;
        o.answer.reason = "pass";
        return o;
    }
    bool restarted = known && now - r.first > t.retry_window;
    if (restarted) r.first = now; // too late: starts over
    std::int64_t waited = now - r.first;
    o.write = {r.first, now};
    o.store = !known || restarted || now - row->last >= t.refresh || now < row->last;
    if (waited < t.delay) {
        o.answer.what = verdict::greylisted;
        o.answer.wait = std::chrono::seconds(t.delay - waited);
        o.answer.reason = !known ? "new" : restarted ? "retry window over" : "early retry";
        return o;
    }
    o.answer.what = verdict::pass;
    o.answer.delayed = std::chrono::seconds(waited);
    o.store = true; // the row becomes a passed one
    o.answer.reason = "first pass";
    o.answer.first_pass = true;
    o.first_pass = true;
    return o;
}

bool client_whitelisted(const std::optional<client_row>& row, std::int64_t now, unsigned threshold,
                        const timing& t) {
    if (threshold == 0 || !row) return false;
    if (now - row->last > t.max_age) return false; // forgotten like any other memory
    return row->count >= static_cast<std::int64_t>(threshold);
}

std::optional<client_row> bump_client(const std::optional<client_row>& row, std::int64_t now, const timing& t) {
    if (!row || now - row->last > t.max_age) return client_row{1, now};
    // postgrey: at most once an hour (and a clock that went back counts too)
    if (now >= row->last + 3600 || row->last > now) return client_row{row->count + 1, now};
    return std::nullopt;
}

} // namespace kamaelia::greylist
