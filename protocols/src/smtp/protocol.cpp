#include <kamaelia/chassis/graphline.hpp>
#include <kamaelia/smtp/framer.hpp>
#include <kamaelia/smtp/protocol.hpp>
#include <kamaelia/smtp/relay.hpp>
#include <kamaelia/smtp/session.hpp>

#include <algorithm>

namespace kamaelia::smtp {

std::unique_ptr<component> protocol(const std::shared_ptr<proxy_context>& ctx, const connection_info& peer) {
    return protocol(ctx, peer, nullptr);
}

std::unique_ptr<component> protocol(const std::shared_ptr<proxy_context>& ctx, const connection_info& peer,
                                    std::unique_ptr<component> relay_stage) {
    // The framer frames at the larger limit; ENVELOPE applies the one in force.
    std::size_t limit = std::max(ctx->cfg.max_command_line, ctx->cfg.max_text_line);
    auto envelope_stage = std::make_unique<session>(ctx, peer);
    if (!relay_stage) relay_stage = std::make_unique<relay>(ctx, envelope_stage->number());
    return std::make_unique<graphline>(
        linkage_list{
            {{"self", "inbox"}, {"FRAMING", "inbox"}},
            {{"self", "control"}, {"FRAMING", "control"}},
            {{"FRAMING", "outbox"}, {"ENVELOPE", "inbox"}},
            {{"FRAMING", "signal"}, {"ENVELOPE", "control"}},
            {{"ENVELOPE", "framing"}, {"FRAMING", "reframe"}},
            {{"ENVELOPE", "relay"}, {"RELAY", "inbox"}},
            {{"ENVELOPE", "relay_ctl"}, {"RELAY", "control"}},
            {{"RELAY", "outbox"}, {"ENVELOPE", "relay_in"}},
            {{"RELAY", "signal"}, {"ENVELOPE", "relay_in"}},
            {{"ENVELOPE", "outbox"}, {"self", "outbox"}},
            {{"ENVELOPE", "signal"}, {"self", "signal"}},
        },
        named("FRAMING", std::make_unique<framer>(limit)), named("ENVELOPE", std::move(envelope_stage)),
        named("RELAY", std::move(relay_stage)));
}

} // namespace kamaelia::smtp
