// The SMTP session's envelope stage: the mail transaction the client builds
// with HELO/EHLO, MAIL and RCPT, the proxy's rules for it (relay domains,
// allowed clients, whitelisted triples, RFC 5321's limits) and the log line
// each transaction ends with. No I/O: it answers commands with replies and
// says when a recipient needs the greylist, which the ENVELOPE stage asks
// (`co_await ask(...)`, session.hpp) and hands back to rcpt_decided().
//
// Replies keep Postfix's wording; `error` marks the ones that count towards
// proxy_settings::max_errors.
#pragma once

#include <kamaelia/greylist/decision.hpp>
#include <kamaelia/smtp/command.hpp>
#include <kamaelia/smtp/proxy.hpp>
#include <kamaelia/smtp/reply.hpp>
#include <kamaelia/smtp/transaction.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kamaelia::smtp {

// One reply for the client.
struct answer {
    int code = 0;
    std::string text;   // without the code; '\n' makes a multi-line reply
    bool error = false; // counts towards the session's error limit
};

struct recipient {
    std::string address;
    bool accepted = false;
    bool greylisted = false;
};

class envelope {
public:
    // `client`: the peer's address as logged and greylisted (IPv4 form).
    envelope(proxy_context& ctx, std::string client, std::uint64_t session_id);

    // HELO/EHLO: ends any transaction (logged), remembers the name, lists
    // the extensions (STARTTLS when `offer_starttls`).
    answer hello(const command& c, bool offer_starttls);
    // After STARTTLS the client must greet again (RFC 3207).
    void forget_hello() noexcept;
    answer mail(const command& c);

    // RCPT, first half: the answer now, or nullopt with the greylist's
    // question in `ask` (the recipient is relayable but not whitelisted).
    std::optional<answer> rcpt(const command& c, greylist::request& ask);
    // RCPT, second half: what the greylist said (a failed ask: tempfail).
    answer rcpt_decided(const std::string& address, const greylist::decision& d);

    // DATA's checks: the refusal, or nullopt when the message may be relayed.
    std::optional<answer> data_refusal();

    // Ends the transaction, if one is open, with one log line. `abandoned`
    // works the outcome out from the recipients (greylisted: deferred, all
    // refused: rejected) with "no DATA" as the detail unless one is given.
    void end(outcome r, std::string detail = {});
    // The line of a session that sent no mail (the original's "None" sender),
    // unless a transaction was logged already.
    void end_session(std::string_view why);

    bool in_mail() const noexcept { return in_mail_; }
    std::size_t accepted() const noexcept { return accepted_; }
    const std::vector<recipient>& recipients() const noexcept { return rcpts_; }
    // The longest greylist delay among the accepted recipients (X-Greylist:).
    long long delayed() const noexcept { return delayed_; }
    // "<session hex>.<transaction>": the Received: id and the greylist's instance.
    std::string id() const;
    std::uint64_t session() const noexcept { return session_; }
    // The transaction as the RELAY stage takes it (DATA passed data_refusal()).
    transaction relayed(std::uint16_t client_port) const;

private:
    bool client_allowed() const;
    bool domain_allowed(std::string_view address) const;
    bool triple_whitelisted(std::string_view rcpt) const;
    void log(std::string_view sender, std::string_view result, std::string_view detail);

    proxy_context& ctx_;
    std::string client_;
    std::uint64_t session_;
    unsigned txn_ = 0;
    std::string helo_;
    bool esmtp_ = false;
    bool in_mail_ = false;
    std::string sender_;
    std::optional<std::uint64_t> declared_size_;
    bool body_8bit_ = false;
    std::vector<recipient> rcpts_;
    std::size_t accepted_ = 0;
    std::size_t rcpt_attempts_ = 0; // RCPT commands since the last message delivered, every outcome
    long long delayed_ = 0;
    bool logged_ = false; // a line was written for this session
};

} // namespace kamaelia::smtp
