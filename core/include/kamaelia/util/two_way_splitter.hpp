// two_way_splitter: "inbox" → "outbox" and "outbox2"; "control" → "signal"
// and "signal2" (Kamaelia's TwoWaySplitter).
//
// Back-pressure aware: each message waits for room in "outbox", then in
// "outbox2", so nothing is lost and both outputs see the same order. The
// payload is shared between the two, not copied. producer_finished drains
// the input, then ends it; shutdown_microprocess ends it at once; either way
// the end message goes out of both signal boxes (as does every other
// control message).
#pragma once

#include <kamaelia/core/component.hpp>

namespace kamaelia {

class two_way_splitter : public component {
public:
    two_way_splitter();
    two_way_splitter(two_way_splitter&&) = default;

    std::string type_name() const override { return "two_way_splitter"; }

protected:
    task main() override;
};

} // namespace kamaelia
