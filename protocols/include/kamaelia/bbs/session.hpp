// One connection's state, handed from stage to stage of the board's seq
// (the original passed one mutable dictionary to every stage, and a
// class-level default shared it between sessions by accident; here each
// connection makes its own typed object and gives it to its stages).
#pragma once

#include <kamaelia/bbs/board.hpp>
#include <kamaelia/net/chunks_to_lines.hpp>
#include <kamaelia/net/connection_info.hpp>

#include <cstdint>
#include <memory>
#include <string>

namespace kamaelia::bbs {

struct session {
    session(std::shared_ptr<bbs::board> b, connection_info p, std::shared_ptr<kamaelia::detail::line_state> l)
        : board(std::move(b)),
          peer(std::move(p)),
          line(std::move(l)),
          counted(board->enter()) {}
    // Counted already (board::try_enter, the cap checked).
    session(std::shared_ptr<bbs::board> b, connection_info p, std::shared_ptr<kamaelia::detail::line_state> l,
            board::ticket t)
        : board(std::move(b)),
          peer(std::move(p)),
          line(std::move(l)),
          counted(std::move(t)) {}

    std::shared_ptr<bbs::board> board;
    connection_info peer;
    std::shared_ptr<kamaelia::detail::line_state> line; // the client's line ending (from the framer)
    board::ticket counted;                              // the board counts this session while it lives

    // Written by the authenticator.
    std::string name;         // as the user typed it
    std::int64_t user_id = 0; // 0: not logged in
    // Written by the user retriever.
    std::int64_t last_login = 0;
    std::size_t unread = 0;
    // Any stage: the session is over (quit, timed out, client gone); later
    // stages end at once.
    bool over = false;
};

} // namespace kamaelia::bbs
