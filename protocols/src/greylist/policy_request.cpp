#include <kamaelia/greylist/policy_request.hpp>

#include <kamaelia/greylist/triplet.hpp>

#include <kamaelia/greylist/rules.hpp>

#include <charconv>
#include <cstdlib>

namespace kamaelia::greylist {

std::size_t policy_request::find(std::string_view name) const {
    if (!index_.empty()) {
        auto it = index_.find(name);
        return it == index_.end() ? std::string_view::npos : it->second;
    }
    for (std::size_t i = 0; i < attributes.size(); ++i)
        if (attributes[i].first == name) return i;
    return std::string_view::npos;
}

const std::string* policy_request::get(std::string_view name) const {
    std::size_t i = find(name);
    return i == std::string_view::npos ? nullptr : &attributes[i].second;
}

void policy_request::add(std::string_view name, std::string_view value) {
    if (find(name) != std::string_view::npos) return; // the first value wins
    if (attributes.empty()) attributes.reserve(16);   // one allocation for a usual request
    attributes.emplace_back(std::string(name), std::string(value));
    if (attributes.size() == scan_max + 1) { // past the scan: index every name once
        index_.reserve(2 * scan_max);
        for (std::size_t i = 0; i < attributes.size(); ++i) index_.emplace(attributes[i].first, i);
    } else if (attributes.size() > scan_max + 1) {
        index_.emplace(attributes.back().first, attributes.size() - 1);
    }
}

policy_parse_result policy_parser::next() {
    policy_parse_result r;
    auto fail = [&](policy_parse what, std::string why) {
        r.status = what;
        r.error = std::move(why);
        buf_.clear();
        pos_ = scan_ = req_bytes_ = 0;
        req_ = {};
        return r;
    };
    auto too_large = [&] {
        return fail(policy_parse::too_large, "request longer than " + std::to_string(max_) + " bytes");
    };
    for (;;) {
        // Only the bytes after the last complete line are searched: a line
        // is scanned once, whatever the reads it arrived in.
        std::size_t nl = buf_.find('\n', pos_ + scan_);
        if (nl == std::string::npos) {
            steps_ += buf_.size() - pos_ - scan_;
            scan_ = buf_.size() - pos_;
            if (req_bytes_ + scan_ > max_) return too_large();
            if (pos_ > 0 && pos_ >= buf_.size() / 2) { // drop what was parsed (amortised linear)
                buf_.erase(0, pos_);
                pos_ = 0;
            }
            return r; // incomplete
        }
        steps_ += nl + 1 - pos_ - scan_;
        scan_ = 0;
        std::size_t len = nl + 1 - pos_;
        if (req_bytes_ + len > max_) return too_large();
        req_bytes_ += len;
        std::string_view line(buf_.data() + pos_, nl - pos_);
        pos_ = nl + 1;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty()) {
            r.status = policy_parse::complete;
            r.consumed = req_bytes_;
            r.request = std::move(req_);
            req_ = {};
            req_bytes_ = 0;
            return r;
        }
        steps_ += line.size();
        if (line.find('\0') != std::string_view::npos) return fail(policy_parse::malformed, "NUL byte in a request");
        auto eq = line.find('=');
        if (eq == std::string_view::npos || eq == 0)
            return fail(policy_parse::malformed, eq == 0 ? "attribute without a name" : "line without '='");
        req_.add(line.substr(0, eq), line.substr(eq + 1));
    }
}

policy_parse_result parse_policy_request(std::string_view buf, std::size_t max_size) {
    policy_parser p(max_size);
    p.feed(buf);
    return p.next();
}

namespace {
bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
        if (x != y) return false;
    }
    return true;
}
} // namespace

policy_query to_query(policy_request r, bool test_hooks) {
    policy_query q;
    auto* type = r.get("request");
    if (!type || *type != "smtpd_access_policy") {
        q.why_not = type ? "request type " + *type : "no request type";
        return q;
    }
    // Greylisting happens at RCPT; elsewhere we have no opinion.
    if (auto* st = r.get("protocol_state"); st && !iequals(*st, "RCPT")) {
        q.why_not = "protocol_state " + *st;
        return q;
    }
    auto* client = r.get("client_address");
    auto* rcpt = r.get("recipient");
    auto* sender = r.get("sender");
    if (!client || client->empty() || !rcpt || rcpt->empty() || !sender) {
        q.why_not = !client || client->empty() ? "no client_address" : !sender ? "no sender" : "no recipient";
        return q;
    }
    q.ask = true;
    q.req.client_address = std::move(*client);
    q.req.sender = std::move(*sender);
    q.req.recipient = std::move(*rcpt);
    if (auto* v = r.get("client_name")) q.req.client_name = *v == "unknown" ? std::string() : std::move(*v);
    if (auto* v = r.get("helo_name")) q.req.helo = std::move(*v);
    if (auto* v = r.get("instance")) q.req.instance = std::move(*v);
    if (auto* v = test_hooks ? r.get("policy_test_time") : nullptr) {
        std::int64_t t = 0;
        auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), t);
        if (ec == std::errc() && end == v->data() + v->size() && t > 0 && t <= max_time) q.req.test_time = t;
    }
    q.etrn_domain = r.get("etrn_domain") != nullptr;
    return q;
}

std::string expand_greylist_text(std::string_view text, std::int64_t seconds_left, std::string_view recipient) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '%' && i + 1 < text.size()) {
            char c = text[i + 1];
            if (c == 's') {
                out += std::to_string(seconds_left);
                ++i;
                continue;
            }
            if (c == 'r') {
                std::string d = domain_of(recipient);
                out += d.empty() ? std::string("localhost") : d;
                ++i;
                continue;
            }
            if (c == '%') {
                out += '%';
                ++i;
                continue;
            }
        }
        // A reply is one line: control characters from a flag or a file stay out.
        out += (static_cast<unsigned char>(text[i]) < 0x20) ? ' ' : text[i];
    }
    return out;
}

std::string policy_action(const decision& d, const policy_query& q, const reply_style& style, bool header_allowed,
                          std::time_t now) {
    switch (d.what) {
    case verdict::tempfail: return {};
    case verdict::whitelisted: return "DUNNO";
    case verdict::greylisted: {
        std::string text = expand_greylist_text(style.greylist_text, d.wait.count(), q.req.recipient);
        return "DEFER_IF_PERMIT " + std::string(q.etrn_domain ? "4.2.0 " : "") + text;
    }
    case verdict::pass:
        if (d.first_pass && style.header && header_allowed) {
            char date[64];
            std::tm tm{};
            gmtime_r(&now, &tm);
            std::strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S UTC", &tm);
            return "PREPEND X-Greylist: delayed " + std::to_string(d.delayed.count()) + " seconds by " + style.version +
                   " at " + style.host + "; " + date;
        }
        return "DUNNO";
    }
    return {};
}

policy_conversation::step policy_conversation::next() {
    step st;
    auto r = parser_.next();
    switch (r.status) {
    case policy_parse::incomplete: return st;
    case policy_parse::too_large:
    case policy_parse::malformed:
        st.what = close;
        st.text = r.error;
        return st;
    case policy_parse::complete: break;
    }
    pending_ = to_query(std::move(r.request), test_hooks_);
    st.query = &pending_;
    if (!pending_.ask) {
        st.what = reply;
        st.text = "action=DUNNO\n\n";
        return st;
    }
    st.what = ask;
    return st;
}

std::string policy_conversation::answer(const decision& d, std::time_t now) {
    bool header_allowed = pending_.req.instance.empty() || pending_.req.instance != header_instance_;
    std::string a = policy_action(d, pending_, style_, header_allowed, now);
    if (a.empty()) return a;
    if (a.rfind("PREPEND ", 0) == 0) header_instance_ = pending_.req.instance;
    return "action=" + a + "\n\n";
}

} // namespace kamaelia::greylist
