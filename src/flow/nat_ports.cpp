#include "flow/nat_ports.hpp"

namespace ferry::flow {

namespace {
constexpr uint8_t kFree = 0;
constexpr uint8_t kInUse = 1;
constexpr uint8_t kForeign = 2;
}  // namespace

NatPortPool::NatPortPool(std::vector<uint16_t> ports) : in_use_(65536, kForeign) {
    // Keep the first copy of each port, in the given order (duplicates would
    // let one port be handed out twice).
    ring_.reserve(ports.size());
    for (const uint16_t p : ports) {
        if (in_use_[p] != kForeign) continue;
        in_use_[p] = kFree;
        ring_.push_back(p);
    }
    ring_.shrink_to_fit();
    count_ = uint32_t(ring_.size());
}

bool NatPortPool::acquire(uint16_t& port) {
    if (count_ == 0) {
        ++exhausted_;
        return false;
    }
    port = ring_[head_];
    if (++head_ == ring_.size()) head_ = 0;
    --count_;
    in_use_[port] = kInUse;
    return true;
}

void NatPortPool::release(uint16_t port) {
    if (in_use_[port] != kInUse) {
        ++bad_releases_;
        return;
    }
    uint32_t tail = head_ + count_;
    if (tail >= ring_.size()) tail -= uint32_t(ring_.size());
    ring_[tail] = port;
    ++count_;
    in_use_[port] = kFree;
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
