#include <kamaelia/greylist/policy.hpp>

#include <spdlog/spdlog.h>

#include <ctime>

namespace kamaelia::greylist {

policy_protocol::policy_protocol(std::shared_ptr<engine> e, reply_style style, std::size_t max_request,
                                 std::string peer)
    : engine_(std::move(e)), conv_(std::move(style), max_request), slot_(std::make_shared<slot>(slot{this, {}})),
      peer_(std::move(peer)) {}

policy_protocol::~policy_protocol() {
    slot_->owner = nullptr; // a decision still on its way finds nobody
}

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
                slot_->d.reset();
                auto s = slot_;
                engine_->decide(st.query.req, [s](decision d) {
                    s->d = std::move(d);
                    if (s->owner) s->owner->signal_external();
                });
                while (!slot_->d) co_await wait_external();
                out = conv_.answer(*slot_->d, std::time(nullptr));
                if (spdlog::should_log(spdlog::level::debug)) log_policy_decision(st.query.req, *slot_->d, out);
                if (out.empty()) {
                    // No reply: Postfix retries, then applies its default action (451 4.3.5).
                    spdlog::error("policy: {}: no answer for {} -> {}: {}", peer_, st.query.req.sender,
                                  st.query.req.recipient, slot_->d->reason);
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
