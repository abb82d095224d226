// The bulletin board's per-connection protocol: the EuroPython 2009
// tutorial's seq of four stages (docs/ORIGINAL.md, example systems), finished.
//
//   pipeline(telnet_lines(), seq(authenticator, user_retriever,
//                                message_board_ui, state_saver_logout))
//
// Each stage is a component that reads lines from "inbox" and writes bytes
// (lines, prompts without a line end, telnet commands) to "outbox"; they
// share one typed `session`. seq forwards control to the active stage, so a
// client that goes away ends the stage waiting for it, and the whole graph
// with it; input typed ahead (a password before its prompt) is carried to
// the next stage. A stage asks the board's store and KDF services
// (service.hpp) and resumes with the answer, or early when its client
// leaves (ask's cancel_if: the late answer is dropped).
//
// Dialogue (strings kept from the original): `login: `, `password: `
// (telnet echo off meanwhile), `Login Failed!` / `Login Successful`,
// `Hello, <name>`, `main> ` (h, empty line browses, p posts, q quits),
// `messages> ` (empty line: next, r reply, d delete own, x back, h help),
// `You have N message(s) waiting`, `Goodbye!`.
#pragma once

#include <kamaelia/bbs/service.hpp>
#include <kamaelia/bbs/session.hpp>
#include <kamaelia/core/component.hpp>
#include <kamaelia/core/result.hpp>
#include <kamaelia/core/task.hpp>
#include <kamaelia/protocols/line_session.hpp>

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace kamaelia::bbs {

// What every stage does: a line session (buffered output, the connection's
// end messages; protocols/line_session.hpp) with line input under limits and
// an idle timeout, and requests to the board's services awaited without blocking.
class stage : public line_session {
public:
    explicit stage(std::shared_ptr<bbs::session> s) : s_(std::move(s)) {}
    ~stage() override;
    bbs::session& state() noexcept { return *s_; }

protected:
    task main() final;
    virtual subtask<> run() = 0;

    bbs::board& board() noexcept { return *s_->board; }
    const settings& cfg() const noexcept { return s_->board->config(); }

    // ---- output (buffered until the next read or the stage's end) ----------
    void say(std::string_view line);  // a line, sanitised, ended as the client ends its lines
    void prompt(std::string_view p);  // no line end
    void raw(std::string_view bytes); // telnet commands
    subtask<bool> flush();

    // ---- input -------------------------------------------------------------
    // The next line; nullopt when the session is over (client gone, input
    // ended, idle too long: s.over is then set and the client told why).
    subtask<std::optional<std::string>> read_line();
    // Prompts, reads, and re-prompts while the line is too long or holds
    // control characters (the client is told which).
    subtask<std::optional<std::string>> ask(std::string_view prompt_text);

    // ---- the board's services ----------------------------------------------
    // Asks the store service to run `job` and resumes once its transaction
    // has committed: true; false if the client went away meanwhile or the
    // store failed (then s.over is set and the client told to try later).
    // g++ 12 may destroy temporaries in a co_await expression twice: pass
    // a named job (and named strings below), never a lambda in place.
    subtask<bool> on_db(const std::function<void(store&)>& job);
    // Asks the KDF service; nullopt as on_db's false.
    subtask<std::optional<kdf_answer>> on_kdf(kdf_request& req);

    // An end message seen on control: the client has gone or its input ended.
    bool input_ended() const noexcept { return end_message().has_value(); }
    // Stopped, or the socket closed: nothing more is written.
    bool gone() const noexcept { return stop_seen() || socket_closed(); }

    std::shared_ptr<bbs::session> s_;

private:
    // ask()'s cancel_if: the client has gone.
    static bool client_gone(component& c);
    // After an ask that did not answer: sets s.over, tells the client unless it has gone.
    void service_failed(const service_error& e);
};

class authenticator : public stage {
public:
    using stage::stage;
    std::string type_name() const override { return "authenticator"; }

protected:
    subtask<> run() override;
};

class user_retriever : public stage {
public:
    using stage::stage;
    std::string type_name() const override { return "user_retriever"; }

protected:
    subtask<> run() override;
};

class message_board_ui : public stage {
public:
    using stage::stage;
    std::string type_name() const override { return "message_board_ui"; }

protected:
    subtask<> run() override;

private:
    subtask<> browse();
    // Asks for a subject and a body, then posts. reply_to 0: a new thread.
    subtask<> compose(std::int64_t reply_to, std::string_view to, std::string_view default_subject);
};

class state_saver_logout : public stage {
public:
    using stage::stage;
    std::string type_name() const override { return "state_saver_logout"; }

protected:
    subtask<> run() override;
};

// What a newcomer gets when the session cap is reached: a polite line,
// then the connection closes.
class board_full : public component {
public:
    explicit board_full(std::size_t cap) : cap_(cap) {}
    std::string type_name() const override { return "board_full"; }

protected:
    task main() override;

private:
    std::size_t cap_;
};

// The per-connection graph: telnet framing, then the four stages in a seq.
// Refuses politely (board_full) once the board has max_sessions sessions.
// `framer_max` bounds a line before the board sees it: beyond it the
// client is told and disconnected (settings::max_line, smaller, is answered
// and the session goes on).
std::unique_ptr<component> protocol(const std::shared_ptr<bbs::board>& b, const connection_info& peer,
                                    std::size_t framer_max = default_max_line);

// Lines a stage would refuse: anything is_printable_text refuses (printable.hpp).
bool has_control_chars(std::string_view s) noexcept;

} // namespace kamaelia::bbs
