// Test doubles for the SMTP proxy: a greylist service answered by hand (or
// by a rule) and an in-process upstream MTA that records what it receives.
#pragma once

#include "fixture.hpp"

#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/core/service.hpp>
#include <kamaelia/greylist/decision.hpp>
#include <kamaelia/greylist/service.hpp>

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace kamaelia::test {

// A greylist service answered by hand (or by a rule, at once), registered
// on the fixture's scheduler as greylist::service_name.
struct fake_engine : component {
    std::function<greylist::decision(const greylist::request&)> rule; // unset: answer by hand
    std::vector<greylist::request> asked;
    std::deque<request<greylist::check>> waiting;

    task main() override {
        while (!shutdown_requested()) {
            while (auto r = recv<request<greylist::check>>()) {
                asked.push_back(r->body.r);
                if (rule) {
                    r->reply(rule(r->body.r));
                } else {
                    waiting.push_back(std::move(*r));
                }
            }
            co_await wait_any();
        }
    }
    // Answers the oldest waiting request.
    void answer(greylist::verdict v, long wait = 0, long delayed = 0) {
        auto r = std::move(waiting.front());
        waiting.pop_front();
        r.reply(greylist::decision{v, std::chrono::seconds(wait), std::chrono::seconds(delayed), "test"});
    }
};

inline fake_engine* start_fake_greylist(fixture& f) {
    auto& e = f.spawn<fake_engine>();
    f.sched.services().register_service(greylist::service_name, e, "inbox");
    return &e;
}

// What a fake MTA saw, kept after the connection object is gone.
struct mta_log {
    std::string bytes;                 // everything the proxy wrote
    std::vector<std::string> commands; // command lines (without CRLF)
    std::vector<std::string> messages; // message data as received (stuffed, without the final dot)
    int connections = 0;
    int quits = 0;
};

// An upstream SMTP server in-process: RELAY's upstream connection.
struct fake_mta : component {
    std::shared_ptr<mta_log> log;
    std::string greeting = "220 fake.test ESMTP\r\n";
    std::string ehlo = "250-fake.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-XFORWARD NAME ADDR PROTO HELO\r\n"
                       "250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n";
    std::string rcpt_reply = "250 2.1.5 Ok\r\n";
    std::deque<std::string> rcpt_replies; // used first, one per RCPT, when given
    std::string final_reply = "250 2.0.0 Ok: queued as 4XYZ\r\n";
    bool refuse = false;              // behaves like a refused connection
    bool die_in_data = false;         // the connection breaks after the first data line
    bool close_after_message = false; // says 421 and closes once a message is taken
    bool stall_at_dot = false;        // takes the message, then never answers its final dot
    explicit fake_mta(std::shared_ptr<mta_log> l) : log(std::move(l)) {}

    task main() override {
        if (refuse) {
            send_forced(message(socket_shutdown("connect to 127.0.0.1:1 failed: Connection refused")), "signal");
            co_return;
        }
        ++log->connections;
        if (!greeting.empty()) co_await send(greeting); // empty: connects, never greets
        std::string buf, msg;
        bool in_data = false;
        int rcpts_ok = 0; // a real MTA refuses DATA without an accepted recipient
        for (;;) {
            while (auto s = recv<std::string>()) {
                log->bytes += *s;
                buf += *s;
            }
            std::size_t lf;
            while ((lf = buf.find('\n')) != std::string::npos) {
                std::string line = buf.substr(0, lf + 1);
                buf.erase(0, lf + 1);
                if (in_data) {
                    if (line == ".\r\n") {
                        in_data = false;
                        rcpts_ok = 0;
                        log->messages.push_back(msg);
                        msg.clear();
                        if (stall_at_dot) continue;
                        co_await send(final_reply);
                        if (close_after_message) {
                            co_await send(std::string("421 4.4.2 fake.test idle timeout\r\n"));
                            send_forced(message(socket_shutdown("peer closed")), "signal");
                            co_return;
                        }
                    } else {
                        msg += line;
                        if (die_in_data) {
                            send_forced(message(socket_shutdown("read failed: Connection reset by peer")), "signal");
                            co_return;
                        }
                    }
                    continue;
                }
                std::string cmd =
                    line.substr(0, line.size() - (line.size() >= 2 && line[line.size() - 2] == '\r' ? 2 : 1));
                log->commands.push_back(cmd);
                std::string v = cmd.substr(0, 4);
                if (v == "EHLO")
                    co_await send(ehlo);
                else if (v == "RCPT") {
                    std::string rr = rcpt_reply;
                    if (!rcpt_replies.empty()) {
                        rr = rcpt_replies.front();
                        rcpt_replies.pop_front();
                    }
                    if (rr[0] == '2') ++rcpts_ok;
                    co_await send(rr);
                } else if (v == "DATA" && rcpts_ok == 0) {
                    co_await send(std::string("554 5.5.1 Error: no valid recipients\r\n"));
                } else if (v == "DATA") {
                    in_data = true;
                    co_await send(std::string("354 go ahead\r\n"));
                } else if (v == "QUIT") {
                    ++log->quits;
                    co_await send(std::string("221 2.0.0 Bye\r\n"));
                    send_forced(message(socket_shutdown("closed")), "signal");
                    co_return;
                } else {
                    if (v == "MAIL" || v == "RSET") rcpts_ok = 0;
                    co_await send(std::string("250 2.0.0 Ok\r\n"));
                }
            }
            while (auto c = recv<ipc>("control")) {
                if (c->ends()) {
                    send_forced(message(socket_shutdown("closed by handler")), "signal");
                    co_return;
                }
            }
            co_await wait_any();
        }
    }
};

} // namespace kamaelia::test
