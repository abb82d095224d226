// `kamaelia policy --unix PATH`: the policy protocol on a UNIX socket
// (Postfix's check_policy_service unix:/path). server_core is TCP only, so
// this small acceptor drives the same policy_conversation per connection
// with plain Asio callbacks on the scheduler's io_context.
#pragma once

#include <kamaelia/core/component.hpp>
#include <kamaelia/greylist/decision.hpp>
#include <kamaelia/greylist/policy_request.hpp>

#include <memory>
#include <string>

namespace kamaelia {
class scheduler;
}

namespace kamaelia::greylist {

class unix_listener : public component {
public:
    // Binds now (a stale socket file is replaced, a busy one refused; mode
    // 0666 like postgrey's --socketmode) and throws std::system_error naming
    // the path when it cannot.
    // Each query is asked of the greylist service registered as `service`.
    unix_listener(scheduler& s, std::string path, std::string service, reply_style style = {},
                  std::size_t max_request = 64 * 1024, bool test_hooks = false);
    ~unix_listener() override;
    const std::string& path() const noexcept { return path_; }
    std::size_t sessions() const noexcept;

protected:
    task main() override;

private:
    struct impl;
    std::string path_;
    std::unique_ptr<impl> impl_;
};

} // namespace kamaelia::greylist
