// Kamaelia Grey's greylist.conf (spec kamaelia.md §4.2), read strictly:
//   # comment                     (first character '#')
//   key = value                   (everything after the first '=', trimmed)
//   key:                          (a list: each following line that starts
//       item                       with whitespace is one item, trimmed)
// Every key is validated with its line number: an unknown key, a scalar
// written as a list (or the reverse), a line that is neither, are errors.
// Unlike the original, a value containing '=' is kept whole.
#pragma once

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace kamaelia::smtp {

class greylist_conf_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct conf_item {
    std::string value;
    int line = 0;
};

struct greylist_conf {
    std::map<std::string, conf_item> scalars;            // port, servername, serverid, smtp_ip, smtp_port, ...
    std::map<std::string, std::vector<conf_item>> lists; // allowed_senders, allowed_sender_nets, allowed_domains, ...
};

// `path` names the file in errors ("path:line: ...").
greylist_conf parse_greylist_conf(const std::string& text, const std::string& path);

// True when the text has no "[section]" line: the daemon then reads it as greylist.conf.
bool looks_like_greylist_conf(const std::string& text);

} // namespace kamaelia::smtp
