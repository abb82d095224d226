// Moving an old board over: the original's data directory (docs/ORIGINAL.md, example systems) is a
// JSON object of name → clear-text password in `users.passwd` and one JSON
// file per message in `messages/` ({"message": id, "date", "from", "to",
// "subject", "reply-to": [ids], "__body__": text}; dot-files such as
// `.meta` are skipped). Passwords are hashed on the way in; messages get new
// ids in the order of their old ones, and In-Reply-To lists follow them.
#pragma once

#include <kamaelia/bbs/store.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace kamaelia::bbs {

struct import_report {
    std::size_t users_added = 0;
    std::size_t users_skipped = 0; // the name was already taken
    std::size_t messages_added = 0;
    std::vector<std::string> warnings; // files or fields that could not be used
};

// One transaction: all of it or nothing. Throws store_error or
// std::runtime_error (a missing directory, unreadable users.passwd).
import_report import_original(const std::filesystem::path& dir, store& db, std::uint32_t kdf_iterations);

} // namespace kamaelia::bbs
