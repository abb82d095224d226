#include <kamaelia/bbs/stages.hpp>
#include <kamaelia/chassis/pipeline.hpp>
#include <kamaelia/chassis/seq.hpp>
#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/core/service.hpp>
#include <kamaelia/protocols/printable.hpp>
#include <kamaelia/protocols/telnet.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <exception>

namespace kamaelia::bbs {

namespace {

std::string trim(std::string_view s) {
    auto b = s.find_first_not_of(" \t");
    if (b == std::string_view::npos) return {};
    auto e = s.find_last_not_of(" \t");
    return std::string(s.substr(b, e - b + 1));
}

std::string plural_messages(std::size_t n) { return "You have " + std::to_string(n) + " message(s) waiting"; }

} // namespace

bool has_control_chars(std::string_view s) noexcept { return !is_printable_text(s); }

// ---- stage: output ------------------------------------------------------------

stage::~stage() = default;

void stage::say(std::string_view line) {
    // Stored text from elsewhere (an import) cannot steer the terminal either.
    write(telnet::escape(printable_text(line))); // a data 0xFF is IAC IAC on the wire
    write(s_->line ? std::string_view(s_->line->ending) : std::string_view("\r\n"));
}

void stage::prompt(std::string_view p) { write(p); }
void stage::raw(std::string_view bytes) { write(bytes); }

subtask<bool> stage::flush() {
    // A stopped session writes nothing more, as one whose socket closed.
    if (gone()) discard_output();
    bool sent = co_await line_session::flush();
    co_return sent && !gone();
}

// ---- stage: input ----------------------------------------------------------------

subtask<std::optional<std::string>> stage::read_line() {
    bool flushed = co_await flush();
    (void)flushed;
    time_point deadline = sched()->now() + cfg().idle_timeout;
    for (;;) {
        if (auto line = recv<std::string>()) co_return std::move(*line);
        scan_control();
        if (const auto& end = end_message()) {
            s_->over = true;
            if (end->kind == ipc_kind::protocol_error && !gone()) {
                // The framer refused the input (a line past its hard limit).
                say("");
                say(end->text.empty() ? std::string("error: the input broke the protocol") : end->text);
                bool f = co_await flush();
                (void)f;
            }
            co_return std::nullopt;
        }
        duration left = deadline - sched()->now();
        if (left <= duration::zero()) {
            s_->over = true;
            say("");
            say("Idle for too long; goodbye.");
            bool f = co_await flush();
            (void)f;
            spdlog::info("bbs: session from {} idle for too long", s_->peer.name());
            co_return std::nullopt;
        }
        co_await wait(ev_inbox, left);
    }
}

subtask<std::optional<std::string>> stage::ask(std::string_view prompt_text) {
    for (;;) {
        prompt(prompt_text);
        std::optional<std::string> line = co_await read_line();
        if (!line) co_return std::nullopt;
        if (line->size() > cfg().max_line) {
            say("error: line too long (the limit is " + std::to_string(cfg().max_line) + " bytes)");
            continue;
        }
        if (has_control_chars(*line)) {
            say("error: control characters are not allowed");
            continue;
        }
        co_return line;
    }
}

// ---- stage: jobs ---------------------------------------------------------------

bool stage::client_gone(component& c) {
    auto& self = static_cast<stage&>(c);
    self.scan_control();
    return self.gone();
}

void stage::service_failed(const service_error& e) {
    s_->over = true;
    scan_control();
    if (gone()) return; // nobody to tell
    spdlog::debug("bbs: a session from {} was not served: {}", s_->peer.name(), e.text);
    say("error: the board could not do that just now; please try again later");
}

subtask<bool> stage::on_db(const std::function<void(store&)>& job) {
    if (client_gone(*this)) {
        s_->over = true;
        co_return false;
    }
    store_job j{job};
    ask_options opt;
    opt.cancel_if = &stage::client_gone;
    result<job_done> r = co_await kamaelia::ask(board().store_service(), std::move(j), opt);
    if (!r) {
        service_failed(r.error());
        co_return false;
    }
    co_return true;
}

subtask<std::optional<kdf_answer>> stage::on_kdf(kdf_request& req) {
    if (client_gone(*this)) {
        s_->over = true;
        co_return std::nullopt;
    }
    ask_options opt;
    opt.cancel_if = &stage::client_gone;
    result<kdf_answer> r = co_await kamaelia::ask(board().kdf_service(), std::move(req), opt);
    if (!r) {
        service_failed(r.error());
        co_return std::nullopt;
    }
    co_return std::move(*r);
}

task stage::main() {
    if (!s_->over) co_await run();
    bool f = co_await flush();
    (void)f;
}

// ---- the stages ----------------------------------------------------------------

subtask<> authenticator::run() {
    say("");
    unsigned failures = 0;
    for (;;) {
        std::optional<std::string> name = co_await ask("login: ");
        if (!name) co_return;
        raw(telnet::will_echo()); // the client stops echoing what is typed
        std::optional<std::string> password = co_await ask("password: ");
        raw(telnet::wont_echo());
        if (!password) co_return;
        say(""); // the Enter the client did not echo

        auto user = std::make_shared<std::optional<user_record>>();
        std::function<void(store&)> find = [user, n = *name](store& db) { *user = db.find_user(n); };
        bool ok = co_await on_db(find);
        if (!ok) co_return;
        // Unknown names cost a KDF run too: timing does not tell who exists.
        kdf_request check;
        check.password = *password;
        check.stored = *user ? (*user)->password : decoy_hash(cfg().kdf_iterations);
        const std::uint32_t stored_cost = check.stored.iterations;
        // The KDF service keeps the throttle: it refuses a locked name unchecked.
        check.login = login_attempt{*name, s_->peer.peer, user->has_value()};
        std::optional<kdf_answer> verdict = co_await on_kdf(check);
        if (!verdict) co_return;
        if (verdict->locked > duration::zero()) {
            auto minutes = std::chrono::duration_cast<std::chrono::minutes>(verdict->locked).count() + 1;
            say("Too many failed logins; try again in " + std::to_string(minutes) + " minute(s).");
            s_->over = true;
            co_return;
        }
        if (verdict->match && *user) {
            if (stored_cost != cfg().kdf_iterations) {
                // The configured cost changed since this hash was made: the
                // password is at hand now, so rehash it at the new cost.
                kdf_request rehash;
                rehash.password = *password;
                rehash.rehash_at = cfg().kdf_iterations;
                std::optional<kdf_answer> fresh = co_await on_kdf(rehash);
                if (!fresh) co_return;
                auto hash = std::make_shared<password_hash>(std::move(fresh->fresh));
                std::function<void(store&)> save = [hash, n = *name](store& db) { db.set_password(n, *hash); };
                ok = co_await on_db(save);
                if (!ok) co_return;
            }
            s_->name = *name;
            s_->user_id = (*user)->id;
            s_->last_login = (*user)->last_login;
            say("Login Successful");
            spdlog::info("bbs: {} logged in from {}", s_->name, s_->peer.name());
            co_return;
        }
        say("Login Failed!");
        if (++failures >= cfg().attempts_per_session) {
            say("Too many failed logins; goodbye.");
            s_->over = true;
            co_return;
        }
    }
}

subtask<> user_retriever::run() {
    say("");
    say("Retrieving user data...");
    auto unread = std::make_shared<std::size_t>(0);
    std::int64_t id = s_->user_id;
    auto now = static_cast<std::int64_t>(std::time(nullptr));
    std::function<void(store&)> load = [unread, id, now](store& db) {
        *unread = db.unread_count(id);
        db.note_login(id, now);
    };
    bool ok = co_await on_db(load);
    if (!ok) co_return;
    s_->unread = *unread;
    if (s_->last_login) say("Last login: " + format_date(s_->last_login) + " UTC");
    say("");
}

subtask<> message_board_ui::run() {
    say("");
    say("Hello, " + s_->name);
    if (s_->unread) say(plural_messages(s_->unread));
    for (;;) {
        std::optional<std::string> line = co_await ask("main> ");
        if (!line) co_return;
        std::string cmd = trim(*line);
        if (cmd == "q") {
            co_return;
        } else if (cmd == "h") {
            say("<return> - browse messages");
            say("p - post a message");
            say("h - help");
            say("q - quit");
        } else if (cmd.empty()) {
            co_await browse();
        } else if (cmd == "p") {
            co_await compose(0, "all", "");
        } else {
            say("Unknown command; h for help");
        }
        if (s_->over) co_return;
    }
}

namespace {

// Where a visit to `messages>` has got to. Filled in on the database thread
// while the UI waits for the job; read by the UI once it has replied.
struct browse_cursor {
    std::int64_t after_unread = 0; // unread ones are shown first, oldest first ...
    std::int64_t after_read = 0;   // ... then those read before, oldest first
    bool unread_phase = true;
    std::vector<std::int64_t> shown;  // this visit (not shown again among the read ones)
    std::optional<message_record> m;  // the message just fetched
    std::optional<std::int64_t> gone; // its id, if it was deleted meanwhile
    std::size_t unread = 0;
    std::size_t total = 0;
    bool more_read = false;

    bool was_shown(std::int64_t id) const { return std::find(shown.begin(), shown.end(), id) != shown.end(); }
    // The next message read before this visit, past the cursor.
    std::optional<std::int64_t> peek_read(store& db, std::int64_t uid) const {
        std::int64_t after = after_read;
        for (std::size_t guard = 0; guard <= shown.size(); ++guard) {
            auto id = db.next_read(uid, after);
            if (!id || !was_shown(*id)) return id;
            after = *id;
        }
        return std::nullopt;
    }
    void refresh(store& db, std::int64_t uid) {
        unread = db.unread_count(uid);
        more_read = peek_read(db, uid).has_value();
    }
    void next(store& db, std::int64_t uid) {
        m.reset();
        gone.reset();
        std::optional<std::int64_t> id;
        if (unread_phase) {
            id = db.next_unread(uid, after_unread);
            if (id) {
                after_unread = *id;
            } else {
                unread_phase = false;
            }
        }
        if (!id) {
            id = peek_read(db, uid);
            if (id) after_read = *id;
        }
        if (id) {
            shown.push_back(*id);
            m = db.read(uid, *id);
            if (!m) gone = id;
        }
        refresh(db, uid);
    }
};

} // namespace

subtask<> message_board_ui::browse() {
    auto cur = std::make_shared<browse_cursor>();
    std::int64_t uid = s_->user_id;
    std::function<void(store&)> start = [cur, uid](store& db) {
        cur->total = db.message_count();
        cur->refresh(db, uid);
    };
    bool ok = co_await on_db(start);
    if (!ok) co_return;
    if (cur->total == 0) {
        say("No messages.");
        co_return;
    }
    std::function<void(store&)> fetch = [cur, uid](store& db) { cur->next(db, uid); };
    std::optional<message_record> current;
    for (;;) {
        say("");
        if (cur->unread) {
            say(plural_messages(cur->unread));
        } else if (cur->more_read) {
            say("No new messages; <return> shows the ones already read");
        } else {
            say("No more messages");
        }
        std::optional<std::string> line = co_await ask("messages> ");
        if (!line) co_return;
        std::string cmd = trim(*line);
        if (cmd == "x") {
            co_return;
        } else if (cmd == "h") {
            say("<return> - next message");
            say("r - reply");
            say("d - delete message (your own)");
            say("h - help");
            say("x - exit to main menu");
        } else if (cmd.empty()) {
            ok = co_await on_db(fetch);
            if (!ok) co_return;
            if (cur->gone) {
                say("Message " + std::to_string(*cur->gone) + " has been deleted");
                continue;
            }
            if (!cur->m) continue; // nothing left: the status line says so
            current = std::move(cur->m);
            say("");
            say("message: " + std::to_string(current->id));
            say("date: " + current->date);
            say("from: " + current->from);
            say("to: " + current->to);
            say("subject: " + current->subject);
            if (!current->reply_to.empty()) {
                std::string refs;
                for (auto r : current->reply_to) refs += (refs.empty() ? "" : ", ") + std::to_string(r);
                say("In-Reply-To: " + refs);
            }
            say("");
            std::size_t start = 0;
            const std::string& body = current->body;
            while (start <= body.size()) {
                auto nl = body.find('\n', start);
                if (nl == std::string::npos) nl = body.size();
                say(std::string_view(body).substr(start, nl - start));
                start = nl + 1;
            }
        } else if (cmd == "r") {
            if (!current) {
                say("No message to reply to: <return> shows one");
                continue;
            }
            std::string subject = current->subject;
            if (subject.rfind("Re: ", 0) != 0) subject = "Re: " + subject;
            co_await compose(current->id, current->from, subject);
        } else if (cmd == "d") {
            if (!current) {
                say("No message to delete: <return> shows one");
                continue;
            }
            auto result = std::make_shared<delete_result>(delete_result::not_found);
            std::int64_t id = current->id;
            std::function<void(store&)> del = [result, uid, id](store& db) { *result = db.remove(uid, id); };
            ok = co_await on_db(del);
            if (!ok) co_return;
            if (*result == delete_result::deleted) {
                say("Message " + std::to_string(id) + " deleted");
                current.reset();
            } else if (*result == delete_result::not_owner) {
                say("You can only delete your own messages");
            } else {
                say("Message " + std::to_string(id) + " is already gone");
                current.reset();
            }
        } else {
            say("Unknown command; h for help");
        }
        if (s_->over) co_return;
    }
}

subtask<> message_board_ui::compose(std::int64_t reply_to, std::string_view to, std::string_view default_subject) {
    std::string subject;
    const std::string question =
        default_subject.empty() ? std::string("subject: ") : "subject [" + std::string(default_subject) + "]: ";
    for (;;) {
        std::optional<std::string> line = co_await ask(question);
        if (!line) co_return;
        subject = trim(*line);
        if (subject.size() > cfg().max_subject) {
            say("error: subject too long (the limit is " + std::to_string(cfg().max_subject) + " bytes)");
            continue;
        }
        break;
    }
    if (subject.empty()) subject = default_subject.empty() ? std::string("(no subject)") : std::string(default_subject);
    say("Type the message; a line with a single . ends it (.. for a line with one dot).");
    std::string body;
    bool too_long = false;
    for (;;) {
        std::optional<std::string> line = co_await read_line();
        if (!line) co_return; // the session ended: nothing is posted
        if (*line == ".") break;
        if (line->size() > cfg().max_line) {
            say("error: line too long (the limit is " + std::to_string(cfg().max_line) + " bytes); line dropped");
            continue;
        }
        if (has_control_chars(*line)) {
            say("error: control characters are not allowed; line dropped");
            continue;
        }
        std::string_view text = *line;
        if (text.size() >= 2 && text[0] == '.' && text[1] == '.') text.remove_prefix(1);
        if (too_long) continue;
        if (body.size() + text.size() + 1 > cfg().max_body) {
            too_long = true;
            say("error: message too long (the limit is " + std::to_string(cfg().max_body) +
                " bytes); it will not be posted. End it with a single .");
            continue;
        }
        if (!body.empty()) body += '\n';
        body.append(text);
    }
    if (too_long) {
        say("Message not posted");
        co_return;
    }
    message_record m;
    m.date = format_date(static_cast<std::int64_t>(std::time(nullptr)));
    m.author_id = s_->user_id;
    m.from = s_->name;
    m.to = std::string(to);
    m.subject = std::move(subject);
    m.body = std::move(body);
    if (reply_to) m.reply_to.push_back(reply_to);
    auto id = std::make_shared<std::int64_t>(0);
    std::function<void(store&)> post = [id, m = std::move(m)](store& db) { *id = db.post(m); };
    bool ok = co_await on_db(post);
    if (!ok) co_return;
    // Only now, committed and on disk, is the post acknowledged.
    say("Message " + std::to_string(*id) + " posted");
}

subtask<> state_saver_logout::run() {
    say("");
    say("Saving user data...");
    std::int64_t id = s_->user_id;
    auto now = static_cast<std::int64_t>(std::time(nullptr));
    std::function<void(store&)> save = [id, now](store& db) {
        if (id) db.note_logout(id, now);
    };
    bool ok = co_await on_db(save);
    if (!ok) co_return;
    say("");
    say("Goodbye!");
    say("");
}

task board_full::main() {
    std::string text = "Sorry, the board is full (" + std::to_string(cap_) + " sessions); please try again later.\r\n";
    bool sent = co_await send(std::move(text));
    (void)sent;
    send_forced(message(producer_finished("board full")), "signal");
}

std::unique_ptr<component> protocol(const std::shared_ptr<bbs::board>& b, const connection_info& peer,
                                    std::size_t framer_max) {
    std::optional<board::ticket> counted = b->try_enter();
    if (!counted) {
        spdlog::warn("bbs: refused {}: {} sessions open", peer.name(), b->sessions());
        return std::make_unique<board_full>(b->config().max_sessions);
    }
    telnet_lines framer(framer_max);
    auto s = std::make_shared<session>(b, peer, framer.line_state(), std::move(*counted));
    return std::make_unique<pipeline>(std::move(framer), seq([s] { return std::make_unique<authenticator>(s); },
                                                             [s] { return std::make_unique<user_retriever>(s); },
                                                             [s] { return std::make_unique<message_board_ui>(s); },
                                                             [s] { return std::make_unique<state_saver_logout>(s); }));
}

} // namespace kamaelia::bbs
