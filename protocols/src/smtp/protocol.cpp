#include <kamaelia/chassis/graphline.hpp>
#include <kamaelia/smtp/framer.hpp>
#include <kamaelia/smtp/protocol.hpp>
#include <kamaelia/smtp/session.hpp>

#include <algorithm>

namespace kamaelia::smtp {

std::unique_ptr<component> protocol(const std::shared_ptr<proxy_context>& ctx, const connection_info& peer) {
    // The framer frames at the larger limit; the session applies the one in force.
    std::size_t limit = std::max(ctx->cfg.max_command_line, ctx->cfg.max_text_line);
    return std::make_unique<graphline>(
        linkage_list{
            {{"self", "inbox"}, {"FRAMING", "inbox"}},
            {{"self", "control"}, {"FRAMING", "control"}},
            {{"FRAMING", "outbox"}, {"SESSION", "inbox"}},
            {{"FRAMING", "signal"}, {"SESSION", "control"}},
            {{"SESSION", "framing"}, {"FRAMING", "reframe"}},
            {{"SESSION", "outbox"}, {"self", "outbox"}},
            {{"SESSION", "signal"}, {"self", "signal"}},
        },
        named("FRAMING", std::make_unique<framer>(limit)), named("SESSION", std::make_unique<session>(ctx, peer)));
}

} // namespace kamaelia::smtp
