// Weighted Maglev table builder. The header states the contract; this file
// explains the fill.
//
// Quotas. Classic weighted Maglev (Katran's V1) lets every backend claim in
// turn and hands out extra turns by weight, which only approximates the weight
// ratios. Here every backend is owed an exact quota, floor(size * w / W), and
// the size - sum(floors) leftover slots go one each, in fill order, to backends
// whose exact share has a fractional part. The balance is then exact to one
// slot, by construction, whatever the permutations do.
//
// Fill order. Classic Maglev gives each backend a turn in round robin, and on
// its turn a backend walks its permutation past taken slots until it finds a
// free one. Where a backend is in its permutation then depends on how many of
// its preferred slots the others took before it: remove one backend and the
// slots it held are taken by others a turn early, those others walk less far,
// reach later slots at different turns, and so on. That cascade is why Maglev
// moves ~1.6x the ideal share of slots when 1 of 100 backends leaves.
//
// Here a backend looks at its k-th preferred slot at time (k + 1/2) / weight,
// and a look at a taken slot is spent. When a backend looks at a slot depends
// only on its own identity and weight; the table is the greedy assignment of
// (backend, slot) pairs in that global time order, each pair taken if the slot
// is free and the backend under quota (with fixed quotas, the unique stable
// matching where slots prefer earlier arrivals). Removing a backend frees its
// slots to the next backend to arrive at each of them, and the only knock-on
// moves come from quotas: a backend that gained more of the freed slots than
// its quota grew by stops earlier and leaves its latest arrivals to the next
// arrivals there, and so on. Measured by bench_balance (mean of 5 backend
// sets; "ideal" is the fewest moves that reach the new slot counts):
//
//     scenario                          M        this fill   classic Maglev, same quotas
//     1 of 100 backends leaves          65537    1.29x       1.56x ideal
//     10 of 1000 backends leave         65537    2.03x       3.30x
//     10 of 1000 backends leave         655373   1.30x       1.58x
//     one of 100 weights halves         65537    1.43x       1.88x
//     1 backend joins 100               65537    1.30x       1.56x
//
// The knock-on moves come from the random split of the freed slots among the
// others against their exact quota growth (at most +1 slot of rounding), so
// they shrink relative to the ideal as size / N grows.
//
// Cost. Backends of equal weight look in lockstep, so they form one group and
// a group's round is a branch-free loop over its members (a taken-slot bitmap
// that stays in L1, uint32 add and conditional subtract per step, no
// division). Groups of different weights are merged by a binary heap ordered
// by exact time, so a build costs O(log G) more per look with G distinct
// weights: ~1.5 ms for 1000 backends of equal or few distinct weights at
// M = 65537, ~15 ms when all 1000 weights differ. Most looks of a walk happen
// at the very end, when almost every slot is taken; the endgame computes who
// reaches each of the last ~sqrt(size) free slots first instead.
#include "balance/maglev.hpp"

#include "balance/maglev_detail.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <numeric>
#include <stdexcept>
#include <utility>

namespace ferry::balance {

namespace {

// Fixed seeds: changing either reshuffles every table, so every instance of a
// deployment must run the same values (the unit tests pin them).
constexpr uint64_t kOffsetSeed = 0x4665727279206f66ULL;
constexpr uint64_t kSkipSeed = 0x466572727920736bULL;

// The identity bytes that are hashed, in a fixed layout (no struct padding,
// port big-endian) so the permutation is the same on every machine.
using IdentityBytes = std::array<uint8_t, 19>;

IdentityBytes identity_bytes(const Endpoint& e) {
    IdentityBytes out{};
    std::copy(e.addr.bytes.begin(), e.addr.bytes.end(), out.begin());
    out[16] = static_cast<uint8_t>(e.addr.family);
    out[17] = static_cast<uint8_t>(e.port >> 8);
    out[18] = static_cast<uint8_t>(e.port & 0xff);
    return out;
}

__extension__ using Wide = unsigned __int128;

// One backend with a non-zero weight, as the fill walks it: where it is in its
// permutation and how much of its quota it holds.
struct Walker {
    uint32_t next = 0;         // the slot it looks at next
    uint32_t skip = 1;         // permutation step, 1..size-1
    uint32_t claimed = 0;      // slots taken so far
    uint32_t cap = 0;          // takes slots while claimed < cap: floor_quota, +1 while leftovers remain
    uint32_t floor_quota = 0;  // floor(size * w / W)
    uint32_t index = 0;        // position in the caller's vector: what the table stores
};

// Backends of one weight look at their k-th slot at the same time, so they
// advance together: one heap entry per distinct weight instead of per backend.
//
// The time of look k, (k + 1/2) / weight, is kept as the exact integer
// floor((2k + 1) * 2^33 / weight). Two different times of this form differ by
// at least 2^-33 (denominators are at most 2^17), so these keys order looks
// exactly as the rationals do, ties included, and they stay below 2^58 for
// k < 2^24. The key advances by 2^34 / weight per look, carried without a
// division.
struct WeightGroup {
    uint32_t weight = 0;
    uint32_t looks = 0;           // slots each member has looked at so far
    uint64_t key = 0;             // time of look number `looks`
    uint64_t key_step = 0;        // floor(2^34 / weight)
    uint32_t rem = 0;             // (2 looks + 1) * 2^33 mod weight
    uint32_t rem_step = 0;        // 2^34 mod weight
    std::vector<Walker> members;  // identity order; only those still taking slots (lazily pruned)

    explicit WeightGroup(uint32_t w)
        : weight(w), key((uint64_t(1) << 33) / w), key_step((uint64_t(1) << 34) / w),
          rem(uint32_t((uint64_t(1) << 33) % w)), rem_step(uint32_t((uint64_t(1) << 34) % w)) {}

    void advance_key() {
        key += key_step;
        rem += rem_step;
        if (rem >= weight) {
            rem -= weight;
            ++key;
        }
    }
};

// The fill state shared by all groups. Whether a slot is taken lives in a
// bitmap (8 KiB for 65537 slots: it stays in L1) so that the many looks at
// taken slots never touch the table itself.
class Filler {
public:
    // `table` has size + 1 entries: the last one absorbs the stores of looks
    // that take nothing, so that a look needs no branch.
    Filler(std::vector<uint32_t>& table, std::vector<WeightGroup>& groups, uint32_t extras,
           uint32_t endgame_slots)
        : table_(table.data()), groups_(groups), size_(uint32_t(table.size() - 1)),
          taken_((size_ + 63) / 64, 0), extras_(extras), endgame_at_(size_ - std::min(endgame_slots, size_)) {}

    // Every member of `g` looks at its next slot, in identity order. Returns
    // true once the table is full or few enough slots are free for the endgame.
    bool round(WeightGroup& g) {
        Walker* out = g.members.data();
        uint32_t* const table = table_;
        uint64_t* const taken = taken_.data();
        const uint32_t size = size_;
        uint32_t filled = filled_;
        for (Walker& src : g.members) {
            Walker w = src;
            if (w.claimed >= w.cap) continue;
            const uint32_t slot = w.next;
            w.next += w.skip;
            if (w.next >= size) w.next -= size;
            // Branch-free take (whether a look finds its slot free is a coin
            // toss): a look at a taken slot stores into the scratch entry.
            uint64_t& word = taken[slot / 64];
            const uint64_t before = word;
            const uint32_t take = uint32_t(~before >> (slot % 64)) & 1;
            word = before | (uint64_t(1) << (slot % 64));
            table[size ^ ((slot ^ size) & (0u - take))] = w.index;
            w.claimed += take;
            filled += take;
            if ((take & uint32_t(w.claimed > w.floor_quota)) != 0) [[unlikely]] {
                spend_extra();
                w.cap = std::min(w.cap, w.claimed);
            }
            *out = w;
            out += w.claimed < w.cap;
        }
        g.members.resize(size_t(out - g.members.data()));
        ++g.looks;
        g.advance_key();
        filled_ = filled;
        return filled_ >= endgame_at_;
    }

    // Fills the last free slots with the same outcome as going on with
    // round(), but by computing where each remaining walker meets each free
    // slot instead of letting it walk there: near the end most looks hit taken
    // slots, so walking costs ~size/free looks per slot filled.
    void endgame();

private:
    // A walker went above its floor quota. When the leftover slots run out,
    // every walker's cap drops to its floor (members already pruned from a
    // group, or stale copies past a round's write point, do not mind).
    void spend_extra() {
        if (--extras_ > 0) return;
        for (WeightGroup& g : groups_) {
            for (Walker& w : g.members) w.cap = w.floor_quota;
        }
    }

    uint32_t* table_;
    std::vector<WeightGroup>& groups_;
    uint32_t size_;
    std::vector<uint64_t> taken_;
    uint32_t filled_ = 0;
    uint32_t extras_;      // leftover slots not yet handed out
    uint32_t endgame_at_;  // switch to endgame() once this many slots are filled
};

// x mod m for x < 2^64 without a division instruction (Barrett reduction).
struct Modulus {
    uint32_t m;
    uint64_t inv;  // floor((2^64 - 1) / m)
    explicit Modulus(uint32_t mod) : m(mod), inv(~uint64_t(0) / mod) {}
    uint32_t reduce(uint64_t x) const {
        const uint64_t q = uint64_t((Wide(x) * inv) >> 64);
        uint64_t r = x - q * m;
        while (r >= m) r -= m;
        return uint32_t(r);
    }
};

// a^-1 mod p for prime p and 0 < a < p (extended Euclid).
uint32_t inverse_mod(uint32_t a, uint32_t p) {
    int64_t t = 0, new_t = 1, r = p, new_r = a;
    while (new_r != 0) {
        const int64_t q = r / new_r;
        t = std::exchange(new_t, t - q * new_t);
        r = std::exchange(new_r, r - q * new_r);
    }
    return uint32_t(t < 0 ? t + p : t);
}

// A walker still taking slots when the endgame starts, with the earliest
// moment it meets one of the free slots.
struct Chaser {
    Walker* walker;
    const WeightGroup* group;
    uint32_t group_id;   // tie-break, as in the heap
    uint32_t member;     // tie-break, as within a round
    uint32_t inv_skip;   // skip^-1 mod size: turns a slot into a number of looks
    uint32_t best_slot;  // the free slot it reaches first
    uint64_t best_look;  // 2 k + 1 for the look k (counted from the start) that reaches it
};

void Filler::endgame() {
    if (filled_ == size_) return;
    const Modulus mod(size_);
    std::vector<uint32_t> free_slots;
    free_slots.reserve(size_ - filled_);
    for (uint32_t word = 0; word < taken_.size(); ++word) {
        for (uint64_t bits = ~taken_[word]; bits != 0; bits &= bits - 1) {
            const uint32_t s = word * 64 + uint32_t(std::countr_zero(bits));
            if (s < size_) free_slots.push_back(s);
        }
    }
    std::vector<Chaser> chasers;
    for (uint32_t g = 0; g < groups_.size(); ++g) {
        WeightGroup& group = groups_[g];
        for (uint32_t i = 0; i < group.members.size(); ++i) {
            Walker& w = group.members[i];
            if (w.claimed >= w.cap) continue;
            chasers.push_back({&w, &group, g, i, inverse_mod(w.skip, size_), 0, 0});
        }
    }
    // Walker c, whose next look (number group.looks) is at slot c.next, looks at
    // slot s after (s - next) * skip^-1 mod size more looks.
    auto aim = [&](Chaser& c) {
        uint32_t best_d = ~0u;
        uint32_t best_s = 0;
        const uint32_t next = c.walker->next;
        for (uint32_t s : free_slots) {
            const uint32_t diff = s >= next ? s - next : s + size_ - next;
            const uint32_t d = mod.reduce(uint64_t(diff) * c.inv_skip);
            if (d < best_d) {
                best_d = d;
                best_s = s;
            }
        }
        c.best_slot = best_s;
        c.best_look = 2 * (uint64_t(c.group->looks) + best_d) + 1;
    };
    for (Chaser& c : chasers) aim(c);

    // The same order as the rounds: time (2k + 1) / (2 weight), compared
    // exactly (both products are below 2^42), then group, then member.
    auto before = [](const Chaser& a, const Chaser& b) {
        const uint64_t ta = a.best_look * b.group->weight;
        const uint64_t tb = b.best_look * a.group->weight;
        if (ta != tb) return ta < tb;
        if (a.group_id != b.group_id) return a.group_id < b.group_id;
        return a.member < b.member;
    };
    while (filled_ < size_) {
        const auto first = std::min_element(chasers.begin(), chasers.end(), before);
        const uint32_t slot = first->best_slot;
        Walker& w = *first->walker;
        table_[slot] = w.index;
        ++filled_;
        ++w.claimed;
        free_slots.erase(std::find(free_slots.begin(), free_slots.end(), slot));
        if (w.claimed > w.floor_quota) spend_extra();
        if (filled_ == size_) break;
        // Drop walkers that stopped; re-aim those that were heading for `slot`.
        size_t out = 0;
        for (Chaser& c : chasers) {
            if (c.walker->claimed >= c.walker->cap) continue;
            if (c.best_slot == slot) aim(c);
            chasers[out++] = c;
        }
        chasers.resize(out);
    }
}

// A group's next round, as the heap orders them: earlier time, then the
// heavier group (lower id), packed into one integer (time key < 2^58, group
// ids < 2^16 as there are at most 65535 distinct weights) so that comparing
// two turns is branch-free.
using Turn = Wide;

Turn turn(const WeightGroup& g, uint32_t id) { return (Wide(g.key) << 16) | id; }

// Restores the min-heap `h[0, n)` after h[0] grew.
void sift_down(std::vector<Turn>& h, size_t n) {
    size_t i = 0;
    const Turn moving = h[0];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n) break;
        child += size_t(child + 1 < n && h[child + 1] < h[child]);
        if (h[child] >= moving) break;
        h[i] = h[child];
        i = child;
    }
    h[i] = moving;
}

void fill(std::vector<WeightGroup>& groups, Filler& filler) {
    if (groups.size() == 1) {
        while (!filler.round(groups[0])) {
        }
    } else {
        // Rounds in time order: a binary min-heap with one entry per group,
        // built sorted (a sorted array is a heap), and updated in place.
        std::vector<Turn> heap;
        heap.reserve(groups.size());
        for (uint32_t g = 0; g < groups.size(); ++g) heap.push_back(turn(groups[g], g));
        std::sort(heap.begin(), heap.end());
        size_t n = heap.size();
        while (n > 0) {
            const auto id = uint32_t(heap[0] & 0xffff);
            WeightGroup& g = groups[id];
            if (filler.round(g)) break;
            if (g.members.empty()) {
                heap[0] = heap[--n];
            } else {
                heap[0] = turn(g, id);
            }
            sift_down(heap, n);
        }
    }
    filler.endgame();
}

}  // namespace

bool is_prime(uint32_t n) {
    if (n < 2) return false;
    if (n % 2 == 0) return n == 2;
    if (n % 3 == 0) return n == 3;
    for (uint64_t d = 5; d * d <= n; d += 6) {
        if (n % d == 0 || n % (d + 2) == 0) return false;
    }
    return true;
}

namespace detail {

uint32_t default_endgame_slots(uint32_t size) {
    // Where finishing by computation (~free x chasers steps) gets cheaper than
    // walking (~size / free looks per slot): around sqrt(size).
    uint32_t r = 1;
    while (uint64_t(r) * r < size) ++r;
    return r;
}

std::vector<uint32_t> build_maglev_table(const std::vector<MaglevBackend>& backends, uint32_t size,
                                         uint32_t endgame_slots) {
    if (size > kMaxTableSize) {
        throw std::invalid_argument("maglev: table size " + std::to_string(size) + " above the maximum " +
                                    std::to_string(kMaxTableSize));
    }
    if (!is_prime(size)) {
        throw std::invalid_argument("maglev: table size " + std::to_string(size) + " is not prime");
    }
    if (backends.size() >= kNoBackend) throw std::invalid_argument("maglev: too many backends");

    // Identity order, over all backends so that duplicates are caught whatever their weight.
    std::vector<uint32_t> order(backends.size());
    std::iota(order.begin(), order.end(), 0u);
    std::sort(order.begin(), order.end(),
              [&](uint32_t a, uint32_t b) { return backends[a].id < backends[b].id; });
    uint64_t total_weight = 0;
    uint32_t live = 0;
    for (size_t i = 0; i < order.size(); ++i) {
        const MaglevBackend& b = backends[order[i]];
        if (i > 0 && backends[order[i - 1]].id == b.id) {
            throw std::invalid_argument("maglev: duplicate backend " + b.id.to_string());
        }
        if (b.weight > kMaxWeight) {
            throw std::invalid_argument("maglev: weight " + std::to_string(b.weight) + " of " +
                                        b.id.to_string() + " above " + std::to_string(kMaxWeight));
        }
        if (b.weight > 0) {
            total_weight += b.weight;
            ++live;
        }
    }
    if (live > size) {
        throw std::invalid_argument("maglev: " + std::to_string(live) + " weighted backends do not fit in " +
                                    std::to_string(size) + " slots");
    }

    std::vector<uint32_t> table(size, kNoBackend);
    if (live == 0) return table;
    table.push_back(kNoBackend);  // scratch entry for the fill, removed below

    // Distinct weights, heaviest first: the group ids.
    std::vector<uint32_t> weights;
    weights.reserve(live);
    for (uint32_t i : order) {
        if (backends[i].weight > 0) weights.push_back(backends[i].weight);
    }
    std::sort(weights.begin(), weights.end(), std::greater<>());
    weights.erase(std::unique(weights.begin(), weights.end()), weights.end());
    std::vector<WeightGroup> groups;
    groups.reserve(weights.size());
    for (uint32_t w : weights) groups.emplace_back(w);

    uint64_t floors = 0;
    for (uint32_t i : order) {
        const MaglevBackend& b = backends[i];
        if (b.weight == 0) continue;
        const IdentityBytes key = identity_bytes(b.id);
        Walker w;
        w.next = uint32_t(hash_bytes(key.data(), key.size(), kOffsetSeed) % size);
        w.skip = uint32_t(hash_bytes(key.data(), key.size(), kSkipSeed) % (size - 1)) + 1;  // size >= 2
        const uint64_t owed = uint64_t(size) * b.weight;
        w.floor_quota = uint32_t(owed / total_weight);
        w.cap = w.floor_quota + (owed % total_weight != 0 ? 1 : 0);
        w.index = i;
        floors += w.floor_quota;
        const auto g = std::lower_bound(weights.begin(), weights.end(), b.weight, std::greater<>());
        groups[size_t(g - weights.begin())].members.push_back(w);
    }

    const uint32_t extras = uint32_t(size - floors);
    if (extras == 0) {
        for (WeightGroup& g : groups) {
            for (Walker& w : g.members) w.cap = w.floor_quota;
        }
    }
    Filler filler(table, groups, extras, endgame_slots);
    fill(groups, filler);
    table.pop_back();
    return table;
}

}  // namespace detail

std::vector<uint32_t> build_maglev_table(const std::vector<MaglevBackend>& backends, uint32_t size) {
    return detail::build_maglev_table(backends, size, detail::default_endgame_slots(size));
}

}  // namespace ferry::balance
