#include <kamaelia/greylist/rules.hpp>

namespace kamaelia::greylist {

triplet_outcome judge_triplet(const std::optional<triplet_row>& row, std::int64_t now, const timing& t) {
    triplet_outcome o;
    bool known = row.has_value() && span(now, row->last) <= t.max_age;
    triplet_row r = known ? *row : triplet_row{now, now};
    if (known && has_passed(r, t)) {
        // The pass memory: refreshed on use.
        o.write = {r.first, now};
        o.store = span(now, r.last) >= t.refresh || now < r.last;
        o.answer.what = verdict::pass;
        o.answer.reason = "pass";
        return o;
    }
    bool restarted = known && span(now, r.first) > t.retry_window;
    if (restarted) r.first = now; // too late: starts over
    // A first sighting in the future (a clock that went back) counts as now.
    if (r.first > now) r.first = now;
    std::int64_t waited = span(now, r.first);
    o.write = {r.first, now};
    o.store = !known || restarted || span(now, row->last) >= t.refresh || now < row->last;
    if (waited < t.delay) {
        o.answer.what = verdict::greylisted;
        o.answer.wait = std::chrono::seconds(span(t.delay, waited));
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

bool client_whitelisted(const std::optional<client_row>& row, std::int64_t now, unsigned threshold, const timing& t) {
    if (threshold == 0 || !row) return false;
    if (span(now, row->last) > t.max_age) return false; // forgotten like any other memory
    return row->count >= static_cast<std::int64_t>(threshold);
}

std::optional<client_row> bump_client(const std::optional<client_row>& row, std::int64_t now, const timing& t) {
    if (!row || span(now, row->last) > t.max_age) return client_row{1, now};
    // postgrey: at most once an hour (and a clock that went back counts too)
    if (span(now, row->last) >= 3600 || row->last > now)
        return client_row{row->count < INT64_MAX ? row->count + 1 : row->count, now};
    return std::nullopt;
}

} // namespace kamaelia::greylist
