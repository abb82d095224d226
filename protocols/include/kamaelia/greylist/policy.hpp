// The Postfix policy server's per-connection component (a postgrey
// drop-in): name=value lines up to an empty line, one "action=..." reply,
// keep-alive. Wire it to a connected_socket_adapter (server_core does). It
// asks the greylist service (greylist/service.hpp) registered as `service`.
//
// Greylisted: DEFER_IF_PERMIT <text>; first pass: PREPEND X-Greylist: ...
// (once per Postfix `instance`); otherwise, whitelisted, or outside the RCPT
// state: DUNNO. When the greylist cannot answer (a locked or corrupt
// database) the connection closes without a reply, and Postfix answers
// 451 4.3.5 itself. A malformed or oversized request closes it as well.
#pragma once

#include <kamaelia/core/component.hpp>
#include <kamaelia/greylist/decision.hpp>
#include <kamaelia/greylist/meter.hpp>
#include <kamaelia/greylist/pass_memory.hpp>
#include <kamaelia/greylist/policy_request.hpp>
#include <kamaelia/greylist/service.hpp>

#include <memory>
#include <optional>
#include <string>

namespace kamaelia::greylist {

class policy_protocol : public component {
public:
    // `m`, when given, counts the answers (the console's /metrics); it must
    // outlive the component.
    // `memory`, when given, answers the passes it holds without asking
    // (service::memory()).
    explicit policy_protocol(std::string service = service_name, reply_style style = {},
                             std::size_t max_request = 64 * 1024, std::string peer = {}, bool test_hooks = false,
                             meter* m = nullptr, std::shared_ptr<pass_memory> memory = nullptr);

protected:
    task main() override;

private:
    std::string service_;
    policy_conversation conv_;
    std::string peer_;
    meter* meter_;
    std::shared_ptr<pass_memory> memory_;
};

// Logs a decision the way postgrey does (one line, debug level).
void log_policy_decision(const request& r, const decision& d, const std::string& action);

} // namespace kamaelia::greylist
