// The console page's files, embedded at build time (.incbin), so the daemon
// serves them with no install tree and no network: d3 (Debian's node-d3)
// and Chart.js (libjs-chart.js), and the page itself (console_assets/).
#include "console.hpp"

#define KAMAELIA_EMBED(sym, path)                                                                                      \
    __asm__(".section .rodata\n.balign 16\n.global " #sym "_begin\n" #sym "_begin:\n.incbin \"" path                   \
            "\"\n.global " #sym "_end\n" #sym "_end:\n.byte 0\n.previous\n");                                          \
    extern "C" const char sym##_begin[];                                                                               \
    extern "C" const char sym##_end[];

KAMAELIA_EMBED(kamaelia_asset_d3, KAMAELIA_D3_JS)
KAMAELIA_EMBED(kamaelia_asset_chart, KAMAELIA_CHART_JS)
KAMAELIA_EMBED(kamaelia_asset_index, KAMAELIA_CONSOLE_DIR "/index.html")
KAMAELIA_EMBED(kamaelia_asset_js, KAMAELIA_CONSOLE_DIR "/console.js")
KAMAELIA_EMBED(kamaelia_asset_css, KAMAELIA_CONSOLE_DIR "/console.css")

namespace kamaelia::console {

namespace {
std::string_view span(const char* b, const char* e) { return {b, static_cast<std::size_t>(e - b)}; }
} // namespace

const asset* find_asset(std::string_view path) {
    static const asset assets[] = {
        {"/", "text/html; charset=utf-8", span(kamaelia_asset_index_begin, kamaelia_asset_index_end)},
        {"/index.html", "text/html; charset=utf-8", span(kamaelia_asset_index_begin, kamaelia_asset_index_end)},
        {"/assets/console.js", "text/javascript; charset=utf-8", span(kamaelia_asset_js_begin, kamaelia_asset_js_end)},
        {"/assets/console.css", "text/css; charset=utf-8", span(kamaelia_asset_css_begin, kamaelia_asset_css_end)},
        {"/assets/d3.min.js", "text/javascript; charset=utf-8", span(kamaelia_asset_d3_begin, kamaelia_asset_d3_end)},
        {"/assets/chart.min.js", "text/javascript; charset=utf-8",
         span(kamaelia_asset_chart_begin, kamaelia_asset_chart_end)},
    };
    for (const auto& a : assets)
        if (a.path == path) return &a;
    return nullptr;
}

} // namespace kamaelia::console
