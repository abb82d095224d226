// The greylist as a service: whitelists, the timing rules and the store on
// one database thread, asked by `grey`, `policy` and tests alike:
//
//   auto d = co_await ask(greylist::service_name, greylist::check{req});
//   // d: a decision (pass, whitelisted, greylisted, tempfail), or an error
//   // from the service layer (ended, timed out): treat it as tempfail.
//
// The thread takes every request queued, judges them in ONE transaction,
// commits, and only then answers (group commit: eight connections' eight
// decisions share a commit; an answer is durable before it is sent). A
// failing store answers tempfail for that batch and is logged once per
// outage (then rate-limited with a count, then when it ends); the process
// never dies of it. When idle it expires old rows in small transactions.
// With PostgreSQL there is one such thread per pooled connection, each a
// component of its own (below), and each holds at most
// settings::connection_queue requests: beyond that a request is answered
// tempfail at once ("greylist store busy"), counted by refused_busy() and
// logged rate-limited, so a stalled database holds a bounded number of
// askers.
#pragma once

#include <kamaelia/core/stm.hpp>
#include <kamaelia/core/threaded_component.hpp>
#include <kamaelia/greylist/decision.hpp>
#include <kamaelia/greylist/pass_memory.hpp>
#include <kamaelia/greylist/settings.hpp>
#include <kamaelia/greylist/store.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace kamaelia {
class scheduler;
}

namespace kamaelia::greylist {

inline constexpr const char* service_name = "greylist";

// A question for the greylist service.
struct check {
    request r;
    using reply_type = decision;
};

// Sent to the service's "reload" inbox (SIGHUP): re-read the whitelist files;
// on an error the old lists stay and the error is logged.
struct reload_whitelists {};

class whitelist;

// The store as the database thread last found it: empty while its last use
// (a batch, an expiry round, or an empty transaction when the thread has been
// idle for health_interval) succeeded, else that error. Shared through STM
// (Kamaelia's way for threads to share state): the daemon's /healthz reads it
// without waiting for the database.
class store_health {
public:
    // Never blocks: while the database thread commits a change, the answer
    // is what was read last. Called from one thread (the health check).
    std::string error() const {
        try {
            seen_ = *state_.checkout("error");
        } catch (const stm::busy_retry&) {}
        return seen_;
    }
    // The database thread; a commit only when the finding changes.
    void set(std::string e) {
        if (e == written_) return;
        written_ = e;
        state_.atomically({"error"}, [&](auto& c) { c["error"].set(std::move(e)); });
    }

private:
    mutable stm::store<std::string> state_;
    mutable std::string seen_;
    std::string written_;
};

class service final : public threaded_component {
public:
    // Opens (creating or migrating) the SQLite store named in `cfg` and
    // builds the whitelists: store_error naming the file if either fails.
    // A postgresql:// database is opened as a pool of `?pool=N` connections
    // (pg::split_pool; pg::default_pool_size unless said): each is a
    // threaded_component of its own (a child of the service) that batches
    // and commits the requests the service's thread routes to it (by client
    // address, out of one outbox a connection), so several commits are in
    // flight at once.
    explicit service(const settings& cfg);
    service(const settings& cfg, std::unique_ptr<store> st);
    // One connection a store, as many as given (at least one). Several, or
    // one that is remote(), get a worker each and the connection_queue
    // bound; one local store is run by the service's own thread.
    service(const settings& cfg, std::vector<std::unique_ptr<store>> stores);
    ~service() override;
    std::string type_name() const override { return "greylist_service"; }

    // Counters (read after the thread ended, or as a rough live figure).
    std::uint64_t decisions() const noexcept;
    std::uint64_t commits() const noexcept; // transactions of decisions, every connection's
    std::size_t connections() const noexcept;
    // Requests answered "greylist store busy": their connection already
    // held connection_queue requests (a remote store's only).
    std::uint64_t refused_busy() const noexcept;
    // The store's health (see store_health); the handle outlives the service.
    std::shared_ptr<const store_health> health() const noexcept;
    // The recent passes its askers may answer themselves (pass_memory.hpp);
    // the handle outlives the service (then nothing new is put in).
    std::shared_ptr<pass_memory> memory() const noexcept;

protected:
    void thread_main() override;
    void interrupt() noexcept override;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

// Makes the service, registers it as `name` on `s` and activates it there
// (the scheduler owns it). store_error as for the constructor.
service& start_service(scheduler& s, const settings& cfg, const std::string& name = service_name);

} // namespace kamaelia::greylist
