// Counts the greylist's decisions by outcome and times each one (ask to
// durable answer: the store's round trip) for the console's /metrics and
// charts, by wrapping whatever engine the greylist wiring built. It reads
// nothing of the engine's insides.
#pragma once

#include "console.hpp"

#include <kamaelia/greylist/decision.hpp>

#include <chrono>
#include <memory>
#include <utility>

namespace kamaelia::console {

class greylist_meter : public greylist::engine {
public:
    greylist_meter(std::shared_ptr<greylist::engine> inner, std::shared_ptr<greylist_counters> c)
        : inner_(std::move(inner)), counters_(std::move(c)) {}
    void decide(const greylist::request& r, std::function<void(greylist::decision)> done) override {
        auto start = std::chrono::steady_clock::now();
        // `done` runs on the asker's scheduler thread: plain counters suffice.
        inner_->decide(r, [c = counters_, start, done = std::move(done)](greylist::decision d) {
            switch (d.what) {
            case greylist::verdict::pass: ++c->pass; break;
            case greylist::verdict::whitelisted: ++c->whitelisted; break;
            case greylist::verdict::greylisted: ++c->greylisted; break;
            case greylist::verdict::tempfail: ++c->tempfail; break;
            }
            c->store_seconds.observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
            done(std::move(d));
        });
    }
    void reload() override { inner_->reload(); }

private:
    std::shared_ptr<greylist::engine> inner_;
    std::shared_ptr<greylist_counters> counters_;
};

} // namespace kamaelia::console
