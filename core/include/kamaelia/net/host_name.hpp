// This machine's name, for greetings and headers (an SMTP banner, a policy
// server's Received text).
#pragma once

#include <string>

namespace kamaelia {

// gethostname(), or "localhost" when it fails or is empty.
std::string host_name();

} // namespace kamaelia
