// The board's store named by one string, as the operator gives it: a
// postgresql:// (or postgres://) URL names a PostgreSQL database shared by
// several board hosts (password from the URL, PGPASSWORD or PGPASSFILE);
// anything else is a SQLite file, created if missing.
#pragma once

#include <kamaelia/bbs/store.hpp>

#include <memory>
#include <string>
#include <vector>

namespace kamaelia::bbs {

// Opens (creating or migrating the schema) the store at `where`; store_error
// if it cannot. Messages name a URL without its password.
// A tool's one connection: a URL's ?pool=N is not for it.
std::unique_ptr<store> open_store(const std::string& where);
// A daemon's: N stores (connections) for a postgresql:// URL with ?pool=N
// (pg::split_pool: pg::default_pool_size unless said, store_error for a bad value), one for SQLite.
std::vector<std::unique_ptr<store>> open_pool(const std::string& where);

} // namespace kamaelia::bbs
