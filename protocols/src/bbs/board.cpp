#include <kamaelia/bbs/board.hpp>
#include <kamaelia/bbs/open_store.hpp>
#include <kamaelia/core/errors.hpp>
#include <kamaelia/core/ipc.hpp>
#include <kamaelia/core/scheduler.hpp>
#include <kamaelia/core/services.hpp>

#include <spdlog/spdlog.h>

#include <type_traits>

namespace kamaelia::bbs {

board::board(scheduler& s, settings cfg) : sched_(s), cfg_(cfg) {}

board::~board() = default;

std::shared_ptr<board> board::open(scheduler& s, const std::string& where, settings cfg, service_directory* group) {
    // A PostgreSQL URL's ?pool=N: N connections behind the store service.
    return with_services<bbs::store_service, bbs::kdf_service>(s, open_pool(where), cfg, group);
}

template <class StoreService, class KdfService, class Db>
std::shared_ptr<board> board::with_services(scheduler& s, Db db, settings cfg, service_directory* group) {
    std::shared_ptr<board> b(new board(s, cfg));
    if constexpr (std::is_same_v<StoreService, bbs::store_service>)
        register_service_in(group, b->store_name_, s.spawn<StoreService>(std::move(db), cfg.connection_queue), "inbox");
    else
        register_service_in(group, b->store_name_, s.spawn<StoreService>(std::move(db)), "inbox");
    login_throttle::limits throttle{cfg.max_failures, cfg.failure_window, cfg.max_throttled};
    register_service_in(group, b->kdf_name_, s.spawn<KdfService>(s, throttle), "inbox");
    return b;
}

std::shared_ptr<board> board::open(scheduler& s, std::unique_ptr<store> db, settings cfg, service_directory* group) {
    return with_services<bbs::store_service, bbs::kdf_service>(s, std::move(db), cfg, group);
}

std::shared_ptr<board> board::inline_board(scheduler& s, std::unique_ptr<store> db, settings cfg) {
    return with_services<inline_store_service, inline_kdf_service>(s, std::move(db), cfg, nullptr);
}

std::optional<board::ticket> board::try_enter() noexcept {
    std::size_t n = sessions_.load(std::memory_order_relaxed);
    do {
        if (n >= cfg_.max_sessions) return std::nullopt;
    } while (!sessions_.compare_exchange_weak(n, n + 1, std::memory_order_relaxed));
    sessions_total_.fetch_add(1, std::memory_order_relaxed);
    return ticket(this);
}

template <class T>
T* board::service_as(const std::string& name) const {
    const service_registry::service* sv = sched_.services().find(name);
    return sv ? dynamic_cast<T*>(sv->comp) : nullptr;
}

void board::stop_services() {
    for (const std::string* name : {&store_name_, &kdf_name_})
        if (const service_registry::service* sv = sched_.services().find(*name))
            deliver(*sv->comp, "control", message(shutdown_microprocess("the board is stopping")));
}

store& board::inline_store() {
    auto* st = service_as<inline_store_service>(store_name_);
    if (!st) throw bad_state("bbs: the store belongs to its service's thread (not an inline board)");
    return st->db();
}

std::size_t board::db_pending() const {
    auto* st = service_as<bbs::store_service>(store_name_);
    return st ? st->pending() : 0;
}

std::uint64_t board::db_refused_busy() const {
    auto* st = service_as<bbs::store_service>(store_name_);
    return st ? st->refused_busy() : 0;
}

std::size_t board::kdf_pending() const {
    auto* k = service_as<bbs::kdf_service>(kdf_name_);
    return k ? k->pending() : 0;
}

} // namespace kamaelia::bbs
