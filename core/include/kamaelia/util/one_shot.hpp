// one_shot and triggered_one_shot: send one message, then producer_finished
// out of "signal" (Kamaelia's OneShot and TriggeredOneShot).
//
//   one_shot hello(std::string("hello"));            // at once
//   triggered_one_shot go(std::string("go"));        // when anything reaches its inbox
//
// An end message on "control" before the message was sent ends either
// without sending it, and is passed on out of "signal".
#pragma once

#include <kamaelia/core/component.hpp>
#include <kamaelia/util/control_watch.hpp>

#include <string>
#include <utility>

namespace kamaelia {

template <class T>
class one_shot : public component {
public:
    explicit one_shot(T msg) : msg_(std::move(msg)) {}
    one_shot(one_shot&&) = default;

    std::string type_name() const override { return "one_shot"; }

protected:
    task main() override {
        control_watch cw;
        cw.poll(*this);
        if (!cw.ended()) co_await send(std::move(msg_), "outbox");
        cw.forward_end(*this);
    }

private:
    T msg_;
};

template <class T>
class triggered_one_shot : public component {
public:
    explicit triggered_one_shot(T msg) : msg_(std::move(msg)) {}
    triggered_one_shot(triggered_one_shot&&) = default;

    std::string type_name() const override { return "triggered_one_shot"; }

protected:
    task main() override {
        control_watch cw;
        for (;;) {
            if (recv_message("inbox")) { // the trigger; its content does not matter
                co_await send(std::move(msg_), "outbox");
                break;
            }
            cw.poll(*this);
            if (cw.ended()) break;
            co_await wait_any();
        }
        cw.forward_end(*this);
    }

private:
    T msg_;
};

one_shot(const char*)->one_shot<std::string>;
triggered_one_shot(const char*)->triggered_one_shot<std::string>;

} // namespace kamaelia
