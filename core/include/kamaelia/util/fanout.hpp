// fanout: every message on "inbox" goes out of each named outbox.
//
//   fanout f({"left", "right"});
//   component::link({f, "left"}, {a, "inbox"});
//   component::link({f, "right"}, {b, "inbox"});
//
// Kamaelia's Fanout, without its quirk: data goes to the named
// outboxes only, never to "outbox" or "signal". The payload is shared, not
// copied. Sends are flow-controlled and in order: a full receiver holds the
// next message back until it has room. producer_finished (after the inbox is
// drained) or shutdown_microprocess (at once) ends it; the end message goes
// out of "signal". Other control messages are passed on out of "signal".
#pragma once

#include <kamaelia/core/component.hpp>

#include <string>
#include <vector>

namespace kamaelia {

class fanout : public component {
public:
    explicit fanout(std::vector<std::string> outboxes);
    fanout(fanout&&) = default;

    const std::vector<std::string>& outbox_names() const noexcept { return names_; }
    std::string type_name() const override { return "fanout"; }

protected:
    task main() override;

private:
    std::vector<std::string> names_;
};

} // namespace kamaelia
