#include "flow/nat_ports.hpp"

namespace ferry::flow {

NatPortAllocator::NatPortAllocator(std::vector<uint16_t> ports, uint32_t start, uint32_t lanes) {
    // Keep the first copy of each port, in the given order (a duplicate would
    // only make the walk uneven).
    std::vector<bool> seen(65536, false);
    ports_.reserve(ports.size());
    for (const uint16_t p : ports) {
        if (seen[p]) continue;
        seen[p] = true;
        ports_.push_back(p);
    }
    ports_.shrink_to_fit();
    // Lane 0 starts at `start`; the others spread out from there.
    cursors_.resize(lanes == 0 ? 1 : lanes);
    for (uint32_t lane = 0; lane < cursors_.size(); ++lane)
        cursors_[lane] =
            ports_.empty() ? 0 : uint32_t((uint64_t(start) + uint64_t(lane) * 0x9e3779b1u) % ports_.size());
    rng_ ^= uint64_t(start) * 0xbf58476d1ce4e5b9ull;
    if (rng_ == 0) rng_ = 1;
}

std::vector<uint16_t> ports_for_worker(uint16_t first, uint16_t last, uint32_t workers, uint32_t worker) {
    std::vector<uint16_t> out;
    if (workers == 0 || worker >= workers || first > last) return out;
    out.reserve((uint32_t(last) - first) / workers + 1);
    for (uint32_t p = first; p <= last; ++p) {
        if (p % workers == worker) out.push_back(uint16_t(p));
    }
    return out;
}

}  // namespace ferry::flow
