// data_source: emits each item of a list, then producer_finished out of
// "signal" (Kamaelia's DataSource).
//
//   data_source lines(std::vector<std::string>{"one", "two"});
//   data_source numbers{1, 2, 3};
//
// Each item waits for room downstream. An end message on "control" stops
// it early (a source has nothing to finish) and is passed on instead.
#pragma once

#include <kamaelia/core/component.hpp>
#include <kamaelia/util/control_watch.hpp>

#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

namespace kamaelia {

template <class T>
class data_source : public component {
public:
    explicit data_source(std::vector<T> items) : items_(std::move(items)) {}
    data_source(std::initializer_list<T> items) : items_(items) {}
    data_source(data_source&&) = default;

    std::size_t size() const noexcept { return items_.size(); }
    std::string type_name() const override { return "data_source"; }

protected:
    task main() override {
        control_watch cw;
        for (std::size_t i = 0; i < items_.size(); ++i) {
            cw.poll(*this);
            if (cw.ended()) break;
            co_await send(std::move(items_[i]), "outbox");
        }
        cw.poll(*this);
        cw.forward_end(*this);
    }

private:
    std::vector<T> items_;
};

// String literals make strings.
data_source(std::initializer_list<const char*>)->data_source<std::string>;

} // namespace kamaelia
