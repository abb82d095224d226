// A board's messages out, for an operator (`kamaelia bbs-db export`): JSON
// Lines, one message an object with the fields of the original's message
// files (docs/ORIGINAL.md; what bbs/import.hpp reads):
//   {"message": 7, "date": "...", "from": "...", "to": "...",
//    "subject": "...", "reply-to": [3], "__body__": "..."}
// by id. Bytes that are not UTF-8 come out as U+FFFD (JSON is text). The
// users are not exported: their password hashes stay in the database.
#pragma once

#include <kamaelia/bbs/store.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <ostream>

namespace kamaelia::bbs {

// Messages are read `page` at a time (store::messages_after), so a board of
// any size is never in memory at once. Returns how many were written.
std::size_t export_messages(store& db, std::ostream& out, std::size_t page = 500);

// Every message of `db`, `page` at a time, to `f` in id order; the count.
std::size_t for_each_message(store& db, const std::function<void(const message_record&)>& f, std::size_t page = 500);

} // namespace kamaelia::bbs
