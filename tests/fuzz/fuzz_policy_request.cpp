// fuzz-sources: protocols/src/greylist/policy_request.cpp protocols/src/greylist/triplet.cpp
// The policy request parser and conversation on arbitrary bytes: never
// crash, never read out of bounds, consume what it says, always make progress.
#include <kamaelia/greylist/policy_request.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    using namespace kamaelia::greylist;
    auto r = parse_policy_request(in, 1024);
    if (r.status == policy_parse::complete && (r.consumed == 0 || r.consumed > in.size())) std::abort();
    if (r.status == policy_parse::complete) {
        auto q = to_query(r.request);
        decision d;
        d.what = verdict::greylisted;
        d.wait = std::chrono::seconds(42);
        (void)policy_action(d, q, reply_style{}, true, 0);
    }
    // The conversation fed in two pieces must reach the same end as in one.
    policy_conversation conv({}, 1024);
    std::size_t half = size / 2;
    conv.feed(in.substr(0, half));
    int steps = 0;
    auto drive = [&] {
        for (auto st = conv.next(); st.what != policy_conversation::need_input; st = conv.next()) {
            if (++steps > 100000) std::abort(); // no progress
            if (st.what == policy_conversation::close) return false;
            if (st.what == policy_conversation::ask) {
                decision d;
                d.what = verdict::pass;
                d.first_pass = true;
                (void)conv.answer(d, 0);
            }
        }
        return true;
    };
    if (drive()) {
        conv.feed(in.substr(half));
        drive();
    }
    return 0;
}
