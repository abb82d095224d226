// router: each message goes out of every outbox whose rule matches it
// (Kamaelia's Router).
//
//   router r({{[](int n) { return n % 2 == 0; }, "even"},
//             {[](int n) { return n % 2 != 0; }, "odd"},
//             {of_type<std::string>(), "text"}});
//
// A rule is a predicate (see message_predicate.hpp: on the payload's type,
// which then only matches that type, or on the message) and an outbox name;
// the outboxes are declared on this instance (never on the class, the
// original's quirk). A name may be "outbox" (already there). A message
// matching several rules is shared between them, not copied; one matching
// none is dropped and counted. Sends wait for room, in rule order.
// producer_finished (after the inbox is drained) or shutdown_microprocess
// ends it, and the end message goes out of "signal".
#pragma once

#include <kamaelia/core/component.hpp>
#include <kamaelia/util/message_predicate.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace kamaelia {

struct route {
    message_predicate when;
    std::string outbox;

    template <class F>
    route(F predicate, std::string box) : when(make_message_predicate(std::move(predicate))),
                                          outbox(std::move(box)) {}
};

class router : public component {
public:
    explicit router(std::vector<route> routes);
    router(router&&) = default;

    // Messages no rule matched.
    std::uint64_t unrouted() const noexcept { return unrouted_; }
    std::string type_name() const override { return "router"; }

protected:
    task main() override;

private:
    std::vector<route> routes_;
    std::vector<std::size_t> hits_; // reused per message
    std::uint64_t unrouted_ = 0;
};

} // namespace kamaelia
