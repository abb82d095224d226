#include <kamaelia/greylist/policy.hpp>

#include <kamaelia/core/service.hpp>

#include <spdlog/spdlog.h>

#include <chrono>
#include <ctime>

namespace kamaelia::greylist {

policy_protocol::policy_protocol(std::string service, reply_style style, std::size_t max_request, std::string peer,
                                 bool test_hooks, meter* m, std::shared_ptr<pass_memory> memory)
    : service_(std::move(service)),
      conv_(std::move(style), max_request, test_hooks),
      peer_(std::move(peer)),
      meter_(m),
      memory_(std::move(memory)) {}

void log_policy_decision(const request& r, const decision& d, const std::string& action) {
    static const char* names[] = {"pass", "whitelisted", "greylisted", "tempfail"};
    spdlog::debug("policy: {} client={} from={} to={} reason={} -> {}", names[static_cast<int>(d.what)],
                  r.client_address, r.sender, r.recipient, d.reason, action.empty() ? "(close)" : action);
}

task policy_protocol::main() {
    bool closing = false;
    while (!closing) {
        while (auto chunk = recv<std::string>()) conv_.feed(*chunk);
        for (;;) {
            auto st = conv_.next();
            if (st.what == policy_conversation::need_input) break;
            if (st.what == policy_conversation::close) {
                spdlog::warn("policy: {}: closing: {}", peer_, st.text);
                closing = true;
                break;
            }
            std::string out;
            if (st.what == policy_conversation::reply) {
                out = std::move(st.text);
            } else {
                auto asked = std::chrono::steady_clock::now();
                std::optional<decision> known;
                if (memory_) known = memory_->recall(st.query->req);
                decision d;
                if (known) {
                    d = std::move(*known); // a pass the database would answer again, writing nothing
                } else {
                    check question{st.query->req};
                    auto r = co_await ask(service_, std::move(question));
                    // The service layer failing (ended, shutting down) is a tempfail like a store error.
                    d = r ? std::move(*r) : decision{verdict::tempfail, {}, {}, r.error().text};
                }
                if (meter_)
                    meter_->count(d, std::chrono::duration<double>(std::chrono::steady_clock::now() - asked).count());
                out = conv_.answer(d, std::time(nullptr));
                if (spdlog::should_log(spdlog::level::debug)) log_policy_decision(st.query->req, d, out);
                if (out.empty()) {
                    // No reply: Postfix retries, then applies its default action (451 4.3.5).
                    // The store's outage itself is logged by the service, once.
                    spdlog::debug("policy: {}: no answer for {} -> {}: {}", peer_, st.query->req.sender,
                                  st.query->req.recipient, d.reason);
                    closing = true;
                    break;
                }
            }
            co_await send(std::move(out), "outbox");
        }
        if (closing || shutdown_requested()) break;
        co_await wait_any();
    }
    send_forced(message(producer_finished("policy connection done")), "signal");
}

} // namespace kamaelia::greylist
