// null_sink: discards what it receives (Kamaelia's nullSinkComponent).
//
// It awaits its inboxes (the original never paused). producer_finished or
// shutdown_microprocess ends it and is passed on out of "signal", as are
// other control messages.
#pragma once

#include <kamaelia/core/component.hpp>

#include <cstdint>

namespace kamaelia {

class null_sink : public component {
public:
    null_sink() = default;
    null_sink(null_sink&&) = default;

    std::uint64_t discarded() const noexcept { return discarded_; }
    std::string type_name() const override { return "null_sink"; }

protected:
    task main() override;

private:
    std::uint64_t discarded_ = 0;
};

} // namespace kamaelia
