#include "flow/flow_table.hpp"

#include <bit>
#include <cstring>
#include <new>
#include <stdexcept>

#ifdef __linux__
#include <sys/mman.h>
#endif

namespace ferry::flow {

namespace {

constexpr uint32_t kMinCapacity = 1024;
constexpr uint32_t kMaxCapacity = 1u << 30;   // keeps slot indices far below kNoPeer
constexpr size_t kCacheLine = 64;
constexpr size_t kHugePage = size_t(2) << 20;

size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

// Big arrays start on a 2 MiB boundary so transparent huge pages can back them.
size_t alignment_for(size_t bytes) { return bytes >= kHugePage ? kHugePage : kCacheLine; }

void* allocate(size_t bytes) {
    const size_t align = alignment_for(bytes);
    void* p = ::operator new(bytes, std::align_val_t{align});
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (align == kHugePage) (void)::madvise(p, bytes, MADV_HUGEPAGE);  // a hint: failure is fine
#endif
    std::memset(p, 0, bytes);  // touch every page now, not on the packet path
    return p;
}

void deallocate(void* p, size_t bytes) {
    if (p != nullptr) ::operator delete(p, std::align_val_t{alignment_for(bytes)});
}

size_t entries_bytes(uint32_t slots) { return size_t(slots) * sizeof(FlowEntry); }
size_t sigs_bytes(uint32_t slots) { return round_up(size_t(slots) * sizeof(uint16_t), kCacheLine); }
size_t closing_bytes(uint32_t chunks) { return size_t(chunks) * sizeof(ClosingChunk); }

}  // namespace

FlowTable::FlowTable(uint32_t capacity, bool closing_queue) {
    if (capacity < kMinCapacity || capacity > kMaxCapacity) {
        throw std::invalid_argument("flow table capacity must be in [1024, 2^30]");
    }
    // 1.2 slots per entry, in whole buckets (see the header for why).
    const uint64_t want = uint64_t(capacity) * 6 / 5;
    capacity_ = capacity;
    bucket_count_ = uint32_t((want + kBucketSlots - 1) / kBucketSlots);
    slot_count_ = bucket_count_ * kBucketSlots;
    entries_ = static_cast<FlowEntry*>(allocate(entries_bytes(slot_count_)));
    for (uint32_t slot = 0; slot < slot_count_; ++slot) entries_[slot].key.pad = kRemovedPad;
    // A closing flow holds at least two entries. Each lane may hold a part-used
    // chunk at each end: two chunks a lane on top.
    closing_room_ = closing_queue ? capacity / 2 + 1 : 0;
    closing_chunk_count_ =
        closing_queue ? (closing_room_ + ClosingChunk::kItems - 1) / ClosingChunk::kItems + 2 * kClosingLanes : 0;
    try {
        sigs_ = static_cast<uint16_t*>(allocate(sigs_bytes(slot_count_)));
        closing_chunks_ = static_cast<ClosingChunk*>(allocate(closing_bytes(closing_chunk_count_)));
        for (uint32_t c = 0; c < closing_chunk_count_; ++c)
            closing_chunks_[c].next = c + 1 < closing_chunk_count_ ? c + 1 : kNoPeer;
        closing_free_ = closing_chunk_count_ != 0 ? 0 : kNoPeer;
    } catch (...) {
        deallocate(sigs_, sigs_bytes(slot_count_));
        deallocate(entries_, entries_bytes(slot_count_));
        throw;
    }
}

FlowTable::~FlowTable() {
    deallocate(closing_chunks_, closing_bytes(closing_chunk_count_));
    deallocate(sigs_, sigs_bytes(slot_count_));
    deallocate(entries_, entries_bytes(slot_count_));
}

size_t FlowTable::memory_bytes() const {
    return entries_bytes(slot_count_) + sigs_bytes(slot_count_) + closing_bytes(closing_chunk_count_) + sizeof(*this);
}

uint32_t FlowTable::insert(const FlowKey& key, const FlowValue& value) { return insert(key, hash(key), value); }

uint32_t FlowTable::insert(const FlowKey& key, uint32_t h, const FlowValue& value) {
    const uint32_t slot = claim(h, value);
    if (slot != kNoPeer) entries_[slot].key = key;
    return slot;
}

void FlowTable::lookup_bulk(const FlowKey* const keys[], uint32_t n, uint32_t out[]) const {
    uint32_t b1[kBulkMax], b2[kBulkMax], m1[kBulkMax], m2[kBulkMax];
    uint16_t sig[kBulkMax];
    while (n > 0) {
        const uint32_t cnt = n < kBulkMax ? n : kBulkMax;
        // 1: hash every key and start loading both candidate signature lines.
        for (uint32_t i = 0; i < cnt; ++i) {
            const uint32_t h = hash(*keys[i]);
            sig[i] = sig_of(h);
            b1[i] = bucket_of(h, 0);
            b2[i] = bucket_of(h, 1);
            detail::prefetch_read(sigs_ + size_t(b1[i]) * kBucketSlots);
            detail::prefetch_read(sigs_ + size_t(b2[i]) * kBucketSlots);
        }
        // 2: compare signatures and start loading the first candidate entry.
        for (uint32_t i = 0; i < cnt; ++i) {
            m1[i] = detail::match_bucket(sigs_ + size_t(b1[i]) * kBucketSlots, sig[i]);
            m2[i] = b2[i] != b1[i] ? detail::match_bucket(sigs_ + size_t(b2[i]) * kBucketSlots, sig[i]) : 0;
            if (m1[i] != 0) {
                detail::prefetch_read(entries_ + size_t(b1[i]) * kBucketSlots + std::countr_zero(m1[i]));
            } else if (m2[i] != 0) {
                detail::prefetch_read(entries_ + size_t(b2[i]) * kBucketSlots + std::countr_zero(m2[i]));
            }
        }
        // 3: compare keys.
        for (uint32_t i = 0; i < cnt; ++i) {
            uint32_t s = detail::find_in_mask(entries_, b1[i], m1[i], *keys[i]);
            if (s == kNoPeer) s = detail::find_in_mask(entries_, b2[i], m2[i], *keys[i]);
            out[i] = s;
        }
        keys += cnt;
        out += cnt;
        n -= cnt;
    }
}

}  // namespace ferry::flow
