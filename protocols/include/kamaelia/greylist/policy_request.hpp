// The Postfix policy delegation protocol, as pure functions (no I/O, no
// coroutines: the fuzz target links this alone).
//
// A request is `name=value` lines ended by an empty line; the reply is one
// `action=...` line and an empty line. Lines end in LF (a CR before it is
// dropped). Names hold no '=', values no NUL; unknown names are kept but
// ignored; a repeated name keeps its first value.
//
// Parsing is incremental and linear: each byte is looked at once however
// the request is split into reads (a hostile client sending 63 KB two lines
// at a time costs what one 63 KB write costs). A repeated name is found by a
// scan while a request has at most 32 names (Postfix sends about 25: no
// allocation, cheaper than hashing), by a hash index built past that.
#pragma once

#include <kamaelia/greylist/decision.hpp>

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace kamaelia::greylist {

struct policy_request {
    std::vector<std::pair<std::string, std::string>> attributes;
    // The first value of `name`, or nullptr when absent.
    const std::string* get(std::string_view name) const;
    std::string* get(std::string_view name) { return const_cast<std::string*>(std::as_const(*this).get(name)); }
    // Adds an attribute unless the name is already there (the first wins).
    void add(std::string_view name, std::string_view value);

private:
    static constexpr std::size_t scan_max = 32;    // names looked up by a scan up to here
    std::size_t find(std::string_view name) const; // index in attributes, or npos

    struct hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
    };
    std::unordered_map<std::string, std::size_t, hash, std::equal_to<>> index_; // empty up to scan_max names
};

enum class policy_parse {
    complete,   // one request at the start of the buffer, `consumed` bytes long
    incomplete, // no empty line yet: read more
    too_large,  // no empty line within the size limit
    malformed,  // a line without '=', an empty name, or a NUL byte
};

struct policy_parse_result {
    policy_parse status = policy_parse::incomplete;
    std::size_t consumed = 0;
    policy_request request;
    std::string error; // malformed/too_large: what was wrong
};

// Parses the first request of `buf`. A request (with its empty line) longer
// than `max_size` bytes is too_large, also while still incomplete.
policy_parse_result parse_policy_request(std::string_view buf, std::size_t max_size = 64 * 1024);

// The incremental form: feed() what arrives, next() the requests in it.
class policy_parser {
public:
    explicit policy_parser(std::size_t max_size = 64 * 1024) : max_(max_size) {}
    void feed(std::string_view bytes) { buf_.append(bytes); }
    // complete (consumed = the request's bytes), incomplete, too_large or
    // malformed (then the parser is spent: the connection closes).
    policy_parse_result next();
    std::size_t buffered() const noexcept { return buf_.size() - pos_; }
    // Bytes examined so far (the linear-work test counts them).
    std::uint64_t steps() const noexcept { return steps_; }

private:
    std::size_t max_;
    std::string buf_;
    std::size_t pos_ = 0;       // start of the first line not yet parsed
    std::size_t scan_ = 0;      // bytes after pos_ already searched for a newline
    std::size_t req_bytes_ = 0; // bytes of the request in progress parsed so far
    policy_request req_;
    std::uint64_t steps_ = 0;
};

// What the policy server does with a parsed request.
struct policy_query {
    bool ask = false;         // false: answer DUNNO without asking the greylist
    std::string why_not;      // when !ask: "protocol_state DATA", "no recipient", ...
    request req;              // when ask
    bool etrn_domain = false; // the request carried etrn_domain (postgrey then prefixes "4.2.0 ")
};
// policy_test_time (postgrey's test hook) is honoured only when `test_hooks`
// is set, which only the command line's --test-hooks does; otherwise it is
// ignored like any attribute we do not know.
// The request's values move into the query (pass an rvalue to save the copies).
policy_query to_query(policy_request r, bool test_hooks = false);

// Text substitutions of postgrey's --greylist-text: %s seconds left, %r the
// recipient's domain, %% a percent sign.
std::string expand_greylist_text(std::string_view text, std::int64_t seconds_left, std::string_view recipient);

// The action line for a decision (without "action=" and the blank line):
// DEFER_IF_PERMIT <text>, PREPEND X-Greylist: ..., or DUNNO. Empty for
// tempfail (the server then closes without a reply).
struct reply_style {
    std::string greylist_text = "Greylisted, see http://postgrey.schweikert.ch/help/%r.html";
    std::string host = "localhost";   // in X-Greylist
    std::string version = "kamaelia"; // in X-Greylist ("by kamaelia-0.1.0")
    bool header = true;               // prepend X-Greylist on a first pass
};
std::string policy_action(const decision& d, const policy_query& q, const reply_style& style, bool header_allowed,
                          std::time_t now);

// One policy client's conversation, without I/O: bytes in, steps out. The
// TCP component and the UNIX-socket session both drive it.
//
//   conv.feed(bytes);
//   for (auto st = conv.next(); st.kind != policy_conversation::need_input; st = conv.next())
//       reply: write st.text | ask: decide(st.query->req), then write conv.answer(d, now)
//       (empty: close without a reply) | close: close (st.text says why)
class policy_conversation {
public:
    enum kind { need_input, reply, ask, close };
    struct step {
        kind what = need_input;
        std::string text;                    // reply: the bytes to write; close: why
        const policy_query* query = nullptr; // reply, ask: the request's query (valid until the next next())
    };

    explicit policy_conversation(reply_style style = {}, std::size_t max_request = 64 * 1024, bool test_hooks = false)
        : style_(std::move(style)),
          parser_(max_request),
          test_hooks_(test_hooks) {}

    void feed(std::string_view bytes) { parser_.feed(bytes); }
    // The next request's step; one request at a time (call answer() after an ask).
    step next();
    // The reply bytes for the last ask ("action=...\n\n"), or empty when the
    // connection must close without a reply (the store failed).
    std::string answer(const decision& d, std::time_t now);
    std::size_t buffered() const noexcept { return parser_.buffered(); }
    std::uint64_t parse_steps() const noexcept { return parser_.steps(); }

private:
    reply_style style_;
    policy_parser parser_;
    bool test_hooks_;
    policy_query pending_;
    std::string header_instance_; // the instance that got X-Greylist last
};

} // namespace kamaelia::greylist
