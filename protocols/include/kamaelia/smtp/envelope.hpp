// The SMTP session's envelope stage: the mail transaction the client builds
// with HELO/EHLO, MAIL and RCPT, the proxy's rules for it (relay domains,
// allowed clients, whitelisted triples, RFC 5321's limits) and the log line
// each transaction ends with. No I/O: it answers commands with replies and
// says when a recipient needs the greylist, which the session asks
// (`co_await ask(...)`) and hands back to rcpt_decided().
//
// Replies keep Postfix's wording; `error` marks the ones that count towards
// proxy_settings::max_errors.
#pragma once

#include <kamaelia/greylist/decision.hpp>
#include <kamaelia/smtp/command.hpp>
#include <kamaelia/smtp/proxy.hpp>
#include <kamaelia/smtp/reply.hpp>

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

// How a transaction ended, as the session log names it.
enum class outcome { abandoned, accepted, deferred, rejected, failed };

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

    // ---- what the relay needs ----------------------------------------------
    bool in_mail() const noexcept { return in_mail_; }
    const std::string& helo() const noexcept { return helo_; }
    bool esmtp() const noexcept { return esmtp_; }
    const std::string& client() const noexcept { return client_; }
    const std::string& sender() const noexcept { return sender_; }
    std::optional<std::uint64_t> declared_size() const noexcept { return declared_size_; }
    bool body_8bit() const noexcept { return body_8bit_; }
    const std::vector<recipient>& recipients() const noexcept { return rcpts_; }
    std::size_t accepted() const noexcept { return accepted_; }
    // The longest greylist delay among the accepted recipients (X-Greylist:).
    long long delayed() const noexcept { return delayed_; }
    // "<session hex>.<transaction>": the Received: id and the greylist's instance.
    std::string id() const;
    std::uint64_t session() const noexcept { return session_; }

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
    std::size_t rcpt_attempts_ = 0; // RCPT commands this session, every outcome
    long long delayed_ = 0;
    bool logged_ = false; // a line was written for this session
};

// The envelope as the upstream gets it, one command a line (CRLF ended):
// XFORWARD first when the upstream offers it (the client's name, address,
// port, protocol and HELO, as far as it lists them), MAIL with SIZE and BODY
// where it takes them, then a RCPT per accepted recipient.
struct upstream_envelope {
    std::vector<std::string> commands;
    bool xforward = false; // the first command is XFORWARD: its reply refuses nothing
};
upstream_envelope relay_commands(const envelope& e, const extensions& ux, std::uint16_t client_port);

} // namespace kamaelia::smtp
