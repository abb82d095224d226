#include <kamaelia/smtp/envelope.hpp>
#include <kamaelia/smtp/trace.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>

namespace kamaelia::smtp {

envelope::envelope(proxy_context& ctx, std::string client, std::uint64_t session_id)
    : ctx_(ctx),
      client_(std::move(client)),
      session_(session_id) {}

std::string envelope::id() const {
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, session_, 16);
    return std::string(buf, r.ptr) + "." + std::to_string(txn_);
}

// ---- the rules ------------------------------------------------------------------

bool envelope::client_allowed() const {
    const auto& c = ctx_.cfg;
    if (std::find(c.allowed_senders.begin(), c.allowed_senders.end(), client_) != c.allowed_senders.end()) return true;
    for (const auto& n : c.allowed_sender_nets)
        if (n.contains(client_)) return true;
    return false;
}

bool envelope::domain_allowed(std::string_view address) const {
    std::string d = domain_of(address);
    if (d.empty()) return false;
    for (const auto& a : ctx_.cfg.allowed_domains)
        if (a == d) return true;
    return false;
}

bool envelope::triple_whitelisted(std::string_view rcpt) const {
    std::string r = "<" + std::string(rcpt) + ">";
    std::string s = "<" + sender_ + ">";
    for (const auto& t : ctx_.cfg.whitelisted_triples)
        if (t.ip == client_ && t.sender == s && t.recipient == r) return true;
    for (const auto& t : ctx_.cfg.whitelisted_nonstandard_triples)
        if (t.helo == helo_ && t.client.contains(client_) && t.recipient == r) return true;
    return false;
}

// ---- the commands ----------------------------------------------------------------

answer envelope::hello(const command& c, bool offer_starttls) {
    const auto& cfg = ctx_.cfg;
    end(outcome::abandoned);
    helo_ = c.argument;
    esmtp_ = c.what == verb::ehlo;
    if (!esmtp_) return {250, cfg.server_name};
    std::string t = cfg.server_name + "\nPIPELINING\nSIZE " + std::to_string(cfg.max_message_size) +
                    "\n8BITMIME\nENHANCEDSTATUSCODES";
    if (offer_starttls) t += "\nSTARTTLS";
    return {250, std::move(t)};
}

void envelope::forget_hello() noexcept {
    helo_.clear();
    esmtp_ = false;
}

answer envelope::mail(const command& c) {
    const auto& cfg = ctx_.cfg;
    if (helo_.empty()) return {503, "5.5.1 Error: send HELO/EHLO first", true};
    if (in_mail_) return {503, "5.5.1 Error: nested MAIL command", true};
    std::optional<std::uint64_t> size;
    bool eightbit = false;
    std::string bad;
    for (const auto& [k, v] : c.params) {
        if (!esmtp_) {
            bad = "555 5.5.4 Unsupported option: " + k + " (say EHLO for ESMTP)";
        } else if (k == "SIZE") {
            std::uint64_t n = 0;
            auto r = std::from_chars(v.data(), v.data() + v.size(), n);
            if (v.empty() || r.ptr != v.data() + v.size() || r.ec != std::errc())
                bad = "501 5.5.4 Bad SIZE value";
            else
                size = n;
        } else if (k == "BODY") {
            std::string u = v;
            for (char& ch : u) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
            if (u == "8BITMIME")
                eightbit = true;
            else if (u != "7BIT")
                bad = "501 5.5.4 Bad BODY value";
        } else {
            bad = "555 5.5.4 Unsupported option: " + k;
        }
        if (!bad.empty()) break;
    }
    if (!bad.empty()) return {std::stoi(bad.substr(0, 3)), bad.substr(4), true};
    if (size && cfg.max_message_size && *size > cfg.max_message_size)
        return {552, "5.3.4 Error: message size exceeds fixed limit"};
    in_mail_ = true;
    sender_ = c.address;
    declared_size_ = size;
    body_8bit_ = eightbit;
    return {250, "2.1.0 Ok"};
}

std::optional<answer> envelope::rcpt(const command& c, greylist::request& ask) {
    const auto& cfg = ctx_.cfg;
    // Every attempt counts, deferred ones too: else one pipelined write of
    // RCPTs could add rows to the greylist without bound.
    if (++rcpt_attempts_ > cfg.max_rcpt_attempts) return answer{452, "4.5.3 Error: too many recipients", true};
    if (!in_mail_) return answer{503, "5.5.1 Error: need MAIL command", true};
    if (!c.params.empty()) return answer{555, "5.5.4 Unsupported option: " + c.params.front().first, true};
    if (accepted_ >= cfg.max_recipients) return answer{452, "4.5.3 Error: too many recipients"};
    if (is_bare_postmaster(c.address) || client_allowed() ||
        (domain_allowed(c.address) && triple_whitelisted(c.address))) {
        rcpts_.push_back({c.address, true});
        ++accepted_;
        return answer{250, "2.1.5 Ok"};
    }
    if (!domain_allowed(c.address)) {
        rcpts_.push_back({c.address});
        return answer{550, "5.7.1 <" + c.address + ">: Relay access denied", true};
    }
    ask.client_address = client_;
    ask.helo = helo_;
    ask.sender = sender_;
    ask.recipient = c.address;
    ask.instance = id();
    return std::nullopt;
}

answer envelope::rcpt_decided(const std::string& address, const greylist::decision& d) {
    recipient r{address};
    switch (d.what) {
    case greylist::verdict::pass:
    case greylist::verdict::whitelisted:
        r.accepted = true;
        // Like postgrey, X-Greylist: goes on the mail that passed first, not on every later one.
        if (d.first_pass) delayed_ = std::max<long long>(delayed_, d.delayed.count());
        rcpts_.push_back(std::move(r));
        ++accepted_;
        return {250, "2.1.5 Ok"};
    case greylist::verdict::greylisted:
        r.greylisted = true;
        rcpts_.push_back(std::move(r));
        return {451, "4.7.1 <" + address + ">: Recipient address rejected: Greylisted, please try again in " +
                         std::to_string(std::max<long long>(d.wait.count(), 1)) + " seconds"};
    case greylist::verdict::tempfail: break;
    }
    rcpts_.push_back(std::move(r));
    return {451, "4.3.0 <" + address + ">: Temporary failure, please try again later"};
}

std::optional<answer> envelope::data_refusal() {
    if (!in_mail_) return answer{503, "5.5.1 Error: need MAIL command", true};
    if (accepted_ == 0) {
        end(outcome::abandoned, "no valid recipients");
        return answer{554, "5.5.1 Error: no valid recipients"};
    }
    return std::nullopt;
}

// ---- the log ---------------------------------------------------------------------

void envelope::log(std::string_view sender, std::string_view result, std::string_view detail) {
    if (!ctx_.log_line) return;
    std::string rc;
    for (const auto& x : rcpts_) {
        if (!rc.empty()) rc += ", ";
        rc += "<" + x.address + ">";
    }
    auto now = std::chrono::system_clock::now();
    std::time_t secs = ctx_.wall_clock ? ctx_.wall_clock() : std::chrono::system_clock::to_time_t(now);
    int ms =
        static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000);
    ctx_.log_line(log_stamp(secs, ms) + " | " + helo_ + " | " + client_ + " | " + std::string(sender) + " | " + rc +
                  " | " + std::string(result) + " | " + std::string(detail));
    logged_ = true;
}

void envelope::end(outcome r, std::string detail) {
    if (in_mail_) {
        if (r == outcome::abandoned) {
            bool grey = false, any = false;
            for (const auto& x : rcpts_) {
                grey = grey || x.greylisted;
                any = any || x.accepted;
            }
            r = grey ? outcome::deferred : rcpts_.empty() || any ? outcome::abandoned : outcome::rejected;
            if (detail.empty()) detail = "no DATA";
        }
        static const char* names[] = {"ABANDONED", "ACCEPTED", "DEFERRED", "REJECTED", "FAILED"};
        log("<" + sender_ + ">", names[static_cast<int>(r)], detail);
        if (r == outcome::accepted)
            ctx_.delivered.fetch_add(1, std::memory_order_relaxed);
        else if (r == outcome::deferred)
            ctx_.deferred.fetch_add(1, std::memory_order_relaxed);
        else if (r == outcome::rejected)
            ctx_.rejected.fetch_add(1, std::memory_order_relaxed);
    }
    // The attempt cap is on RCPTs since the last message delivered: a client
    // that delivers mail may send any number on one connection (an MTA's
    // reused connection, smtp-source -s); one that only cycles RCPT and RSET
    // to fill the greylist stops at the cap.
    if (in_mail_ && r == outcome::accepted) rcpt_attempts_ = 0;
    in_mail_ = false;
    sender_.clear();
    declared_size_.reset();
    body_8bit_ = false;
    rcpts_.clear();
    accepted_ = 0;
    delayed_ = 0;
    ++txn_;
}

void envelope::end_session(std::string_view why) {
    if (!logged_) log("None", "NO MAIL", why);
}

// ---- towards the relay --------------------------------------------------------------

transaction envelope::relayed(std::uint16_t client_port) const {
    transaction t;
    t.id = id();
    t.helo = helo_;
    t.esmtp = esmtp_;
    t.client = client_;
    t.client_port = client_port;
    t.sender = sender_;
    t.declared_size = declared_size_;
    t.body_8bit = body_8bit_;
    for (const auto& r : rcpts_)
        if (r.accepted) t.recipients.push_back(r.address);
    t.delayed = delayed_;
    return t;
}

upstream_envelope relay_commands(const transaction& t, const extensions& ux) {
    upstream_envelope u;
    if (ux.xforward) {
        auto has = [&](const char* a) {
            return std::find(ux.xforward_attrs.begin(), ux.xforward_attrs.end(), a) != ux.xforward_attrs.end();
        };
        std::string x = "XFORWARD";
        if (has("NAME")) x += " NAME=[UNAVAILABLE]";
        if (has("ADDR")) x += " ADDR=" + xtext(t.client);
        if (has("PORT")) x += " PORT=" + std::to_string(t.client_port);
        if (has("PROTO")) x += t.esmtp ? " PROTO=ESMTP" : " PROTO=SMTP";
        if (has("HELO")) x += " HELO=" + xtext(t.helo);
        u.commands.push_back(x + "\r\n");
        u.xforward = true;
    }
    std::string mail = "MAIL FROM:<" + t.sender + ">";
    if (t.declared_size && ux.size) mail += " SIZE=" + std::to_string(*t.declared_size);
    if (t.body_8bit && ux.eightbitmime) mail += " BODY=8BITMIME";
    u.commands.push_back(mail + "\r\n");
    for (const auto& r : t.recipients) u.commands.push_back("RCPT TO:<" + r + ">\r\n");
    return u;
}

} // namespace kamaelia::smtp
