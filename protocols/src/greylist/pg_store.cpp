#include <kamaelia/greylist/pg_store.hpp>

#include <libpq-fe.h>

#include <algorithm>
#include <initializer_list>
#include <span>
#include <string>
#include <tuple>

namespace kamaelia::greylist {

namespace {

// One step per version; a database at version N runs steps N+1.. at open.
const char* const migrations[] = {
    // 0 -> 1
    "CREATE TABLE grey_triplets(net TEXT NOT NULL, sender TEXT NOT NULL, recipient TEXT NOT NULL,"
    " first BIGINT NOT NULL, last BIGINT NOT NULL, PRIMARY KEY(net, sender, recipient));"
    "CREATE INDEX grey_triplets_last ON grey_triplets(last);"
    "CREATE TABLE grey_clients(address TEXT PRIMARY KEY, count BIGINT NOT NULL, last BIGINT NOT NULL);"
    "CREATE INDEX grey_clients_last ON grey_clients(last);",
};
static_assert(sizeof(migrations) / sizeof(migrations[0]) == pg_store::schema_version);

// The statements, prepared on every (re)connection.
const pg::statement statements[] = {
    {"find", "SELECT first, last FROM grey_triplets WHERE net=$1 AND sender=$2 AND recipient=$3 FOR UPDATE", 3},
    // A first sighting that raced another host's keeps the earlier one.
    {"insert",
     "INSERT INTO grey_triplets(net, sender, recipient, first, last) VALUES($1,$2,$3,$4,$5)"
     " ON CONFLICT(net, sender, recipient) DO UPDATE SET first = LEAST(grey_triplets.first, excluded.first),"
     " last = GREATEST(grey_triplets.last, excluded.last)",
     5},
    {"update", "UPDATE grey_triplets SET first=$4, last=$5 WHERE net=$1 AND sender=$2 AND recipient=$3", 5},
    {"find_client", "SELECT count, last FROM grey_clients WHERE address=$1 FOR UPDATE", 1},
    {"save_client",
     "INSERT INTO grey_clients(address, count, last) VALUES($1,$2,$3)"
     " ON CONFLICT(address) DO UPDATE SET count=excluded.count, last=excluded.last",
     3},
    // SKIP LOCKED: an expiry run by one host never waits for (nor
    // deletes under) a row another host is deciding on.
    {"expire",
     "DELETE FROM grey_triplets WHERE ctid IN (SELECT ctid FROM grey_triplets WHERE last < $1"
     " AND (last < $2 OR (last - first < $3 AND last < $4)) LIMIT $5 FOR UPDATE SKIP LOCKED)",
     5},
    {"expire_clients",
     "DELETE FROM grey_clients WHERE ctid IN (SELECT ctid FROM grey_clients WHERE last < $1 LIMIT $2"
     " FOR UPDATE SKIP LOCKED)",
     2},
    {"evict",
     "DELETE FROM grey_triplets WHERE ctid IN (SELECT ctid FROM grey_triplets ORDER BY last LIMIT $1"
     " FOR UPDATE SKIP LOCKED)",
     1},
};

pg::database::options db_options(const pg_store::options& o) {
    pg::database::options d;
    d.conninfo = o.conninfo;
    d.label = "greylist";
    d.application_name = "kamaelia-greylist";
    d.connect_timeout = o.connect_timeout;
    d.statement_timeout = o.statement_timeout;
    return d;
}

[[noreturn]] void raise(const std::string& message) { throw store_error(message); }

} // namespace

pg_store::pg_store(const options& o) : opt_(o), db_(db_options(o), raise) {
    db_.migrate("greylist", migrations, o.read_only);
    db_.prepare(statements);
    rows_estimate_ = o.rows ? o.rows : std::make_shared<std::atomic<std::int64_t>>(0);
    rows_estimate_->store(db_.exec("SELECT count(*) FROM grey_triplets", "count rows").i64(0, 0));
}

pg_store::~pg_store() = default;

bool pg_store::key_less::operator()(const triplet& a, const triplet& b) const noexcept {
    return std::tie(a.client_net, a.sender, a.recipient) < std::tie(b.client_net, b.sender, b.recipient);
}

void pg_store::begin() {
    rows_.clear();
    clients_.clear();
    writes_.clear();
    begin_pending_ = false;
    db_.ready(statements); // reconnects if need be; ends what a failed batch left
    trips_at_begin_ = db_.round_trips();
    begin_pending_ = true; // sent with the batch's first statements
}

void pg_store::send_queued() {
    if (begin_pending_) {
        db_.send_sql("BEGIN", "begin");
        begin_pending_ = false;
    }
    for (const auto& w : writes_) db_.send(w.name, w.args, w.what);
    writes_.clear();
}

void pg_store::flush() {
    send_queued();
    if (db_.pending()) (void)db_.sync();
}

void pg_store::commit() {
    // BEGIN (if nothing was read), every write and COMMIT: one round trip.
    // An empty batch (the idle probe) still goes to the server, which is
    // how a dead one is noticed.
    send_queued();
    db_.send_sql("COMMIT", "commit");
    auto results = db_.sync();
    const pg::result& c = results.back();
    // A transaction that failed before this pipeline answers ROLLBACK.
    if (std::string_view(PQcmdStatus(c.get())) != "COMMIT") db_.fail("commit", c);
    rows_.clear();
    clients_.clear();
}

void pg_store::rollback() noexcept {
    rows_.clear();
    clients_.clear();
    writes_.clear();
    begin_pending_ = false;
    db_.rollback();
}

namespace {
using args = std::initializer_list<std::string>;
std::span<const std::string> span_of(args a) { return {a.begin(), a.size()}; }
} // namespace

void pg_store::prefetch(std::span<const triplet> keys, std::span<const std::string> clients) {
    // Sorted and once each: hosts lock rows in one order (clients, then
    // triplets), so two batches never wait on each other in a circle.
    std::vector<std::string> want_clients;
    for (const auto& c : clients)
        if (!clients_.contains(c)) want_clients.push_back(c);
    std::sort(want_clients.begin(), want_clients.end());
    want_clients.erase(std::unique(want_clients.begin(), want_clients.end()), want_clients.end());
    std::vector<triplet> want_keys;
    for (const auto& k : keys)
        if (!rows_.contains(k)) want_keys.push_back(k);
    std::sort(want_keys.begin(), want_keys.end(), key_less{});
    want_keys.erase(std::unique(want_keys.begin(), want_keys.end()), want_keys.end());
    if (want_clients.empty() && want_keys.empty()) return;

    send_queued();
    const std::size_t before = db_.pending();
    for (const auto& c : want_clients) db_.send("find_client", span_of({c}), "find client");
    for (const auto& k : want_keys) db_.send("find", span_of({k.client_net, k.sender, k.recipient}), "find");
    auto results = db_.sync();
    std::size_t i = before;
    for (const auto& c : want_clients) {
        const auto& r = results[i++];
        clients_[c] = r.rows() ? std::optional(client_row{r.i64(0, 0), r.i64(0, 1)}) : std::nullopt;
    }
    for (const auto& k : want_keys) {
        const auto& r = results[i++];
        rows_[k] = r.rows() ? std::optional(triplet_row{r.i64(0, 0), r.i64(0, 1)}) : std::nullopt;
    }
}

std::optional<triplet_row> pg_store::find(const triplet& k) {
    if (auto it = rows_.find(k); it != rows_.end()) return it->second;
    flush(); // not prefetched: one statement on its own, after the batch's writes
    auto r = db_.run("find", span_of({k.client_net, k.sender, k.recipient}), "find");
    std::optional<triplet_row> row;
    if (r.rows()) row = triplet_row{r.i64(0, 0), r.i64(0, 1)};
    rows_[k] = row;
    return row;
}

void pg_store::save(const triplet& k, const triplet_row& row, bool known) {
    if (!known && opt_.max_rows > 0 && rows_estimate_->load() >= static_cast<std::int64_t>(opt_.max_rows)) {
        // The flood of unique triplets (RFC 6647): make room in a batch. The
        // count is this host's estimate; others evict for themselves. Rare
        // (at the cap only), so it may cost a round trip of its own.
        flush();
        auto n = std::clamp<std::uint64_t>(opt_.max_rows / 100, 1, 1000);
        auto gone = db_.run("evict", span_of({std::to_string(n)}), "evict").affected();
        rows_estimate_->fetch_sub(static_cast<std::int64_t>(gone));
        evicted_ += gone;
        // The evicted rows are not known here: read again what is asked again.
        rows_.clear();
    }
    writes_.push_back({known ? "update" : "insert",
                       {k.client_net, k.sender, k.recipient, std::to_string(row.first), std::to_string(row.last)},
                       "save"});
    rows_[k] = row;
    if (!known) rows_estimate_->fetch_add(1);
}

std::optional<client_row> pg_store::find_client(const std::string& address) {
    if (auto it = clients_.find(address); it != clients_.end()) return it->second;
    flush();
    auto r = db_.run("find_client", span_of({address}), "find client");
    std::optional<client_row> c;
    if (r.rows()) c = client_row{r.i64(0, 0), r.i64(0, 1)};
    clients_[address] = c;
    return c;
}

void pg_store::save_client(const std::string& address, const client_row& c) {
    writes_.push_back({"save_client", {address, std::to_string(c.count), std::to_string(c.last)}, "save client"});
    clients_[address] = c;
}

std::size_t pg_store::expire(std::int64_t now, const timing& t, std::size_t limit) {
    flush();
    std::size_t gone =
        db_.run("expire",
                span_of({std::to_string(now - std::min(t.retry_window, t.max_age)), std::to_string(now - t.max_age),
                         std::to_string(t.delay), std::to_string(now - t.retry_window), std::to_string(limit)}),
                "expire")
            .affected();
    rows_estimate_->fetch_sub(static_cast<std::int64_t>(gone));
    if (gone < limit)
        gone += db_.run("expire_clients", span_of({std::to_string(now - t.max_age), std::to_string(limit - gone)}),
                        "expire clients")
                    .affected();
    return gone;
}

store_stats pg_store::stats(const timing& t, unsigned awl_threshold) {
    db_.ensure(statements);
    store_stats st;
    st.schema_version = schema_version;
    std::string q = "SELECT count(*), coalesce(sum(CASE WHEN last - first >= " + std::to_string(t.delay) +
                    " THEN 1 ELSE 0 END), 0), coalesce(min(last), 0), coalesce(max(last), 0) FROM grey_triplets";
    auto r = db_.exec(q.c_str(), "stats");
    st.triplets = static_cast<std::uint64_t>(r.i64(0, 0));
    st.passed = static_cast<std::uint64_t>(r.i64(0, 1));
    st.oldest = r.i64(0, 2);
    st.newest = r.i64(0, 3);
    std::string qc = "SELECT count(*), coalesce(sum(CASE WHEN count >= " +
                     std::to_string(awl_threshold ? awl_threshold : INT32_MAX) +
                     " THEN 1 ELSE 0 END), 0) FROM grey_clients";
    auto c = db_.exec(qc.c_str(), "stats");
    st.clients = static_cast<std::uint64_t>(c.i64(0, 0));
    st.clients_whitelisted = static_cast<std::uint64_t>(c.i64(0, 1));
    auto s =
        db_.exec("SELECT pg_total_relation_size('grey_triplets') + pg_total_relation_size('grey_clients')", "stats");
    st.file_bytes = static_cast<std::uint64_t>(s.i64(0, 0));
    return st;
}

void pg_store::for_each(const std::function<void(const triplet&, const triplet_row&)>& f) {
    db_.ensure(statements);
    auto r = db_.exec("SELECT net, sender, recipient, first, last FROM grey_triplets ORDER BY net, sender, recipient",
                      "export");
    for (int i = 0, n = r.rows(); i < n; ++i)
        f(triplet{r.text(i, 0), r.text(i, 1), r.text(i, 2)}, triplet_row{r.i64(i, 3), r.i64(i, 4)});
}

void pg_store::for_each_client(const std::function<void(const std::string&, const client_row&)>& f) {
    db_.ensure(statements);
    auto r = db_.exec("SELECT address, count, last FROM grey_clients ORDER BY address", "export");
    for (int i = 0, n = r.rows(); i < n; ++i) f(r.text(i, 0), client_row{r.i64(i, 1), r.i64(i, 2)});
}

} // namespace kamaelia::greylist
