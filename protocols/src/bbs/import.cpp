#include <kamaelia/bbs/import.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>

namespace kamaelia::bbs {

namespace {

using json = nlohmann::json;

json read_json(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + p.string());
    std::stringstream ss;
    ss << in.rdbuf();
    return json::parse(ss.str()); // throws json::parse_error
}

std::string as_text(const json& j) {
    if (j.is_string()) return j.get<std::string>();
    if (j.is_null()) return {};
    return j.dump();
}

// Ids were numbers or strings of digits.
std::optional<std::int64_t> as_id(const json& j) {
    if (j.is_number_integer()) return j.get<std::int64_t>();
    if (j.is_string()) {
        const std::string& s = j.get_ref<const std::string&>();
        if (s.empty() || s.size() > 18 || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
            return std::nullopt;
        return std::stoll(s);
    }
    return std::nullopt;
}

struct old_message {
    std::int64_t old_id;
    message_record m;
    std::vector<std::int64_t> old_refs;
};

} // namespace

import_report import_original(const std::filesystem::path& dir, store& db, std::uint32_t kdf_iterations) {
    namespace fs = std::filesystem;
    import_report rep;
    if (!fs::is_directory(dir)) throw std::runtime_error(dir.string() + " is not a directory");

    std::vector<std::pair<std::string, std::string>> users;
    fs::path passwd = dir / "users.passwd";
    if (fs::exists(passwd)) {
        json u;
        try {
            u = read_json(passwd);
        } catch (const json::exception& e) {
            throw std::runtime_error(passwd.string() + ": " + e.what());
        }
        if (!u.is_object()) throw std::runtime_error(passwd.string() + ": expected a JSON object name -> password");
        for (auto& [name, pw] : u.items()) {
            if (!pw.is_string() || name.empty()) {
                rep.warnings.push_back(passwd.string() + ": entry '" + name + "' skipped (not a name and a password)");
                continue;
            }
            users.emplace_back(name, pw.get<std::string>());
        }
    } else {
        rep.warnings.push_back("no users.passwd in " + dir.string());
    }

    std::vector<old_message> msgs;
    fs::path mdir = dir / "messages";
    if (fs::is_directory(mdir)) {
        for (const auto& e : fs::directory_iterator(mdir)) {
            std::string fname = e.path().filename().string();
            if (fname.empty() || fname[0] == '.' || !e.is_regular_file()) continue;
            json j;
            try {
                j = read_json(e.path());
            } catch (const std::exception& ex) {
                rep.warnings.push_back(e.path().string() + ": skipped: " + ex.what());
                continue;
            }
            if (!j.is_object()) {
                rep.warnings.push_back(e.path().string() + ": skipped: not a JSON object");
                continue;
            }
            old_message om;
            auto id = j.contains("message") ? as_id(j["message"]) : std::nullopt;
            if (!id) id = as_id(json(fname)); // files are named by their id
            om.old_id = id.value_or(0);
            om.m.date = as_text(j.value("date", json()));
            om.m.from = as_text(j.value("from", json()));
            om.m.to = as_text(j.value("to", json()));
            om.m.subject = as_text(j.value("subject", json()));
            om.m.body = as_text(j.value("__body__", json()));
            if (j.contains("reply-to") && j["reply-to"].is_array())
                for (const auto& r : j["reply-to"])
                    if (auto rid = as_id(r)) om.old_refs.push_back(*rid);
            msgs.push_back(std::move(om));
        }
    } else {
        rep.warnings.push_back("no messages/ folder in " + dir.string());
    }
    std::sort(msgs.begin(), msgs.end(), [](const old_message& a, const old_message& b) { return a.old_id < b.old_id; });

    // Hash first (slow), write after (one short transaction).
    std::vector<std::pair<std::string, password_hash>> hashed;
    for (auto& [name, pw] : users) hashed.emplace_back(name, hash_password(pw, kdf_iterations));

    db.begin();
    try {
        for (auto& [name, h] : hashed) {
            if (db.add_user(name, h)) {
                ++rep.users_added;
            } else {
                ++rep.users_skipped;
                rep.warnings.push_back("user '" + name + "' exists already: kept as it was");
            }
        }
        std::map<std::int64_t, std::int64_t> new_id;
        for (auto& om : msgs) {
            if (auto u = db.find_user(om.m.from)) om.m.author_id = u->id;
            for (auto r : om.old_refs) {
                auto it = new_id.find(r);
                if (it != new_id.end()) {
                    om.m.reply_to.push_back(it->second);
                } else {
                    rep.warnings.push_back("message " + std::to_string(om.old_id) + ": reply-to " + std::to_string(r) +
                                           " is not an earlier message: dropped");
                }
            }
            std::int64_t id = db.post(om.m);
            if (om.old_id) new_id[om.old_id] = id;
            ++rep.messages_added;
        }
        db.commit();
    } catch (...) {
        db.rollback();
        throw;
    }
    return rep;
}

} // namespace kamaelia::bbs
