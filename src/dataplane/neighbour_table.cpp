#include "dataplane/neighbour_table.hpp"

#include <stdexcept>

namespace ferry::dp {

uint64_t PackedMac::pack(const uint8_t mac[6]) {
    uint64_t w = 0;
    for (int i = 0; i < 6; ++i) w |= uint64_t(mac[i]) << (8 * i);
    return w | kValid;
}

void PackedMac::unpack(uint64_t word, uint8_t mac[6]) {
    for (int i = 0; i < 6; ++i) mac[i] = uint8_t(word >> (8 * i));
}

NeighbourTable::NeighbourTable(uint32_t capacity_pow2) : slots_(capacity_pow2), mask_(capacity_pow2 - 1) {
    if (capacity_pow2 < 2 || (capacity_pow2 & (capacity_pow2 - 1)) != 0)
        throw std::invalid_argument("neighbour table capacity must be a power of two");
}

int NeighbourTable::find_or_add(uint32_t ip, bool add) {
    if (ip == 0) return -1;
    const uint32_t mask = mask_;
    for (uint32_t i = hash(ip) & mask, n = 0; n <= mask; i = (i + 1) & mask, ++n) {
        uint32_t key = slots_[i].ip.load(std::memory_order_relaxed);
        if (key == ip) return int(i);
        if (key == 0) {
            // Keep one slot free so readers' probes always end.
            if (!add || used_ + 1 >= slots_.size()) return -1;
            slots_[i].mac.store(0, std::memory_order_relaxed);
            slots_[i].ip.store(ip, std::memory_order_release);
            ++used_;
            return int(i);
        }
    }
    return -1;
}

bool NeighbourTable::update(uint32_t ip, const uint8_t mac[6]) {
    int i = find_or_add(ip, true);
    if (i < 0) return false;
    slots_[size_t(i)].mac.store(PackedMac::pack(mac), std::memory_order_release);
    return true;
}

bool NeighbourTable::invalidate(uint32_t ip) {
    int i = find_or_add(ip, false);
    if (i < 0) return false;
    slots_[size_t(i)].mac.store(0, std::memory_order_release);
    return true;
}

bool NeighbourTable::add_unresolved(uint32_t ip) { return find_or_add(ip, true) >= 0; }

uint32_t NeighbourTable::slot_of(uint32_t ip) const {
    if (ip == 0) return kNoSlot;
    const uint32_t mask = mask_;
    for (uint32_t i = hash(ip) & mask, n = 0; n <= mask; i = (i + 1) & mask, ++n) {
        uint32_t key = slots_[i].ip.load(std::memory_order_relaxed);
        if (key == ip) return i;
        if (key == 0) return kNoSlot;
    }
    return kNoSlot;
}

std::vector<uint32_t> NeighbourTable::addresses() const {
    std::vector<uint32_t> out;
    for (const auto& s : slots_) {
        uint32_t ip = s.ip.load(std::memory_order_relaxed);
        if (ip != 0) out.push_back(ip);
    }
    return out;
}

}  // namespace ferry::dp
