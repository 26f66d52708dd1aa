// IPv4 neighbour (ARP) table: written by the control thread only, read by
// every worker without locks.
//
// Open addressing over a fixed array; an entry, once given an address, keeps
// it for the life of the table (the number of next hops an appliance talks to
// is small: backends, gateways and on-link clients). Its MAC and state live in
// one 64-bit word written atomically, so a reader sees either the old or the
// new MAC, never half of each.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace ferry::dp {

// A MAC address packed in the low 48 bits of a word, "valid" in bit 63.
struct PackedMac {
    static constexpr uint64_t kValid = 1ull << 63;
    static uint64_t pack(const uint8_t mac[6]);
    static void unpack(uint64_t word, uint8_t mac[6]);
};

class NeighbourTable {
public:
    static constexpr uint32_t kNoSlot = 0xffffffffu;

    explicit NeighbourTable(uint32_t capacity_pow2 = 4096);

    // Worker side: the PackedMac word of `ip` (network order), kValid set
    // when resolved; 0 when unknown or unresolved. The worker writes the MAC
    // into the frame from this word (no bytes staged on the stack). Always
    // inline: on every packet (a call cost ferryd 6 instructions a packet).
    __attribute__((always_inline)) uint64_t lookup_word(uint32_t ip) const {
        for (uint32_t i = hash(ip) & mask_, n = 0; n <= mask_; i = (i + 1) & mask_, ++n) {
            uint32_t key = slots_[i].ip.load(std::memory_order_acquire);
            if (key == ip) {
                uint64_t w = slots_[i].mac.load(std::memory_order_acquire);
                return (w & PackedMac::kValid) ? w : 0;
            }
            if (key == 0) return 0;
        }
        return 0;
    }
    // Worker side: lookup_word for the address in `slot` (from slot_of), with
    // no hashing or probing: a backend's next hop carries its slot in the
    // snapshot.
    __attribute__((always_inline)) uint64_t word_at(uint32_t slot) const {
        const uint64_t w = slots_[slot].mac.load(std::memory_order_acquire);
        return (w & PackedMac::kValid) ? w : 0;
    }
    // The MAC of `ip` (network order) if resolved.
    bool lookup(uint32_t ip, uint8_t mac[6]) const {
        const uint64_t w = lookup_word(ip);
        if (w == 0) return false;
        PackedMac::unpack(w, mac);
        return true;
    }

    // Control side (single writer).
    // Sets the MAC of ip (adds the entry if needed). False when the table is full.
    bool update(uint32_t ip, const uint8_t mac[6]);
    // Marks the entry unresolved (keeps the slot). Returns true if it existed.
    bool invalidate(uint32_t ip);
    // Adds ip without a MAC (a next hop to resolve). False when full.
    bool add_unresolved(uint32_t ip);
    bool contains(uint32_t ip) const { return slot_of(ip) != kNoSlot; }
    // The slot that holds `ip`, kNoSlot when it was never added. A slot keeps
    // its address for the life of the table, so the answer stays true.
    uint32_t slot_of(uint32_t ip) const;
    // Every address ever added, resolved or not (control-thread use).
    std::vector<uint32_t> addresses() const;
    uint32_t size() const { return used_; }

    static uint32_t hash(uint32_t ip) {
        uint32_t h = ip * 0x9e3779b1u;
        return h ^ (h >> 16);
    }

private:
    struct Slot {
        std::atomic<uint32_t> ip{0};   // network order; 0 = free
        std::atomic<uint64_t> mac{0};  // PackedMac word
    };
    int find_or_add(uint32_t ip, bool add);

    std::vector<Slot> slots_;
    uint32_t mask_;  // slots_.size() - 1 (a power of two), kept so a lookup need not compute it
    uint32_t used_ = 0;
};

}  // namespace ferry::dp
