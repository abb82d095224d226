#include <kamaelia/bbs/export.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>

namespace kamaelia::bbs {

std::size_t for_each_message(store& db, const std::function<void(const message_record&)>& f, std::size_t page) {
    page = std::max<std::size_t>(page, 1);
    std::size_t n = 0;
    std::int64_t after = 0;
    for (;;) {
        auto part = db.messages_after(after, page);
        for (const auto& m : part) f(m);
        n += part.size();
        if (part.size() < page) return n;
        after = part.back().id;
    }
}

std::size_t export_messages(store& db, std::ostream& out, std::size_t page) {
    using json = nlohmann::json;
    return for_each_message(
        db,
        [&](const message_record& m) {
            json j;
            j["message"] = m.id;
            j["date"] = m.date;
            j["from"] = m.from;
            j["to"] = m.to;
            j["subject"] = m.subject;
            j["reply-to"] = m.reply_to;
            j["__body__"] = m.body;
            out << j.dump(-1, ' ', false, json::error_handler_t::replace) << '\n';
        },
        page);
}

} // namespace kamaelia::bbs
