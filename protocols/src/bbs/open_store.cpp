#include <kamaelia/bbs/open_store.hpp>
#include <kamaelia/bbs/pg_store.hpp>
#include <kamaelia/bbs/sqlite_store.hpp>

namespace kamaelia::bbs {

std::unique_ptr<store> open_store(const std::string& where) {
    if (pg::is_url(where)) {
        pg_store::options o;
        o.conninfo = where;
        return std::make_unique<pg_store>(o);
    }
    return std::make_unique<sqlite_store>(where);
}

} // namespace kamaelia::bbs
