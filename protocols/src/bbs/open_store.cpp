#include <kamaelia/bbs/open_store.hpp>
#include <kamaelia/bbs/pg_store.hpp>
#include <kamaelia/bbs/sqlite_store.hpp>

#include <stdexcept>

namespace kamaelia::bbs {

std::unique_ptr<store> open_store(const std::string& where) {
    if (pg::is_url(where)) {
        pg_store::options o;
        o.conninfo = where;
        return std::make_unique<pg_store>(o);
    }
    return std::make_unique<sqlite_store>(where);
}

std::vector<std::unique_ptr<store>> open_pool(const std::string& where) {
    std::size_t n = 1;
    if (pg::is_url(where)) try {
            n = pg::split_pool(where).size;
        } catch (const std::invalid_argument& e) {
            throw store_error(std::string("bbs: ") + e.what());
        }
    std::vector<std::unique_ptr<store>> out;
    for (std::size_t i = 0; i < n; ++i) out.push_back(open_store(where));
    return out;
}

} // namespace kamaelia::bbs
