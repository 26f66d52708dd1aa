// How long a control loop sleeps between passes: kMinUs after a pass that did
// work, doubling up to kMaxUs while passes find nothing to do.
//
// ferryd's control thread polls the workers' message rings (neighbour
// requests and learnt MACs) between its sleeps; requests on the control socket
// wake it at once (ControlServer::wait). A fixed 200 us sleep woke an idle
// ferryd's control thread 3,258 times a second, taking CPU and cache from
// whatever shares its core: on a 2-core machine, the traffic generator of
// scripts/bench.sh (docs/PERFORMANCE.md). Idle, it now wakes about 500 times a
// second (475 measured); a worker's request waits at most kMaxUs.
#pragma once

#include <algorithm>
#include <cstdint>

namespace ferry::ops {

class IdleBackoff {
public:
    static constexpr uint32_t kMinUs = 200;
    static constexpr uint32_t kMaxUs = 2'000;

    // The sleep after a pass; `worked`: the pass handled something.
    uint32_t next(bool worked) {
        us_ = worked ? kMinUs : std::min(us_ * 2, kMaxUs);
        return us_;
    }

private:
    uint32_t us_ = kMinUs;
};

}  // namespace ferry::ops
