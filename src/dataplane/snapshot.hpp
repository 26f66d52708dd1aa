// What workers read to steer a packet: the VIPs, their lookup tables and the
// backends, built whole by the control thread and published as one pointer.
//
// A Snapshot is immutable once published. Workers load the pointer once per
// loop iteration and report a quiescent state afterwards (rte_rcu_qsbr); the
// control thread frees an old snapshot only after every worker has moved on.
// Building one is pure code (no EAL), so it is unit-tested on its own.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <memory>
#include <string>
#include <vector>

#include "balance/hash.hpp"
#include "balance/maglev.hpp"
#include "config/config.hpp"
#include "flow/flow_table.hpp"

namespace ferry::dp {

inline constexpr uint32_t kNone = 0xffffffffu;

// Administrative and health state of a backend, as the control thread sees it.
enum class BackendState : uint8_t {
    up = 0,     // takes new flows
    draining,   // no new flows; existing flows continue (weight 0, drain, 503)
    down,       // failed health check: no new flows
    removed,    // gone from the config; existing flows continue until they end
};
const char* to_string(BackendState s);

// One backend as workers need it. Indexed by stable backend id.
struct BackendEntry {
    uint32_t ip = 0;           // network order
    uint16_t port = 0;         // network order
    uint16_t egress_port = 0;  // DPDK port id that reaches it
    uint32_t nexthop_ip = 0;   // network order: itself, or a gateway
    // nexthop_ip's slot in the neighbour table (NeighbourTable::slot_of), set
    // by the control plane before it publishes, so a worker reads the MAC
    // without a lookup; kNone when the table had no room (then it looks up).
    uint32_t neighbour_slot = kNone;
    BackendState state = BackendState::removed;
    bool drop_flows = false;   // down with down_flows = drop: existing flows are cut too
    bool known = false;        // false for ids not (yet) in use
};

// One VIP as workers need it. Indexed by stable VIP id.
struct VipEntry {
    bool present = false;
    uint32_t ip = 0;           // network order
    uint16_t port = 0;         // network order
    uint8_t proto = 0;         // IPPROTO_TCP / IPPROTO_UDP
    ForwardMode mode = ForwardMode::nat;
    HashKey hash = HashKey::five_tuple;
    SchedulerKind scheduler = SchedulerKind::maglev;
    flow::Timeouts timeouts;
    std::vector<uint32_t> table;        // maglev lookup table: backend ids or kNone
    std::vector<uint32_t> rr_sequence;  // round_robin: smooth weighted sequence of backend ids
    std::vector<uint32_t> cand_ids;     // least_conn / two_choices: backends with weight > 0
    std::vector<uint32_t> cand_weights;     // their effective weights
    std::vector<uint32_t> cand_cumulative;  // running sums of cand_weights (two_choices)
    std::vector<uint32_t> backend_ids;  // configured backends, in config order
    std::string name;

    // The `table` slot of a new flow: XXH64 of its 5-tuple (or of its source
    // address, hash = source_ip), mapped onto the table by multiply-shift (no
    // division). The one place this is computed: workers pick by it and
    // ferryctl trace reports it. Addresses and ports in network order; `table`
    // must not be empty.
    uint32_t table_slot_of(uint32_t src_ip, uint32_t dst_ip, uint16_t src_port, uint16_t dst_port,
                           uint8_t l4_proto) const {
        const uint64_t h = hash == HashKey::source_ip
                               ? balance::hash_bytes(&src_ip, 4, 0)
                               : balance::xxh64::hash_5tuple_v4(src_ip, dst_ip, src_port, dst_port, l4_proto, 0);
        return balance::table_slot(h, uint32_t(table.size()));
    }
};

// Stable numbering of VIPs and backends for the life of the process, so flow
// entries (which store ids) stay meaningful across reloads.
class IdRegistry {
public:
    uint32_t backend_id(const Endpoint& e);  // assigns a new id on first sight
    uint32_t vip_id(const Endpoint& e, L4Proto proto);
    // Lookups that never assign: kNone when unknown.
    uint32_t find_backend(const Endpoint& e) const;
    uint32_t find_vip(const Endpoint& e, L4Proto proto) const;
    uint32_t backend_count() const { return uint32_t(backends_.size()); }
    uint32_t vip_count() const { return uint32_t(vips_.size()); }
    const Endpoint& backend(uint32_t id) const { return backends_[id]; }

    // How many ids there would be once `cfg` is registered: those already
    // assigned plus one per endpoint not seen yet. Assigns nothing, so a
    // config that would pass the process's limits is refused before any id
    // is spent on it.
    struct Counts {
        uint32_t backends = 0;
        uint32_t vips = 0;
    };
    Counts counts_with(const Config& cfg) const;

private:
    std::map<Endpoint, uint32_t> backend_ids_;
    std::vector<Endpoint> backends_;
    std::map<std::pair<Endpoint, L4Proto>, uint32_t> vip_ids_;
    std::vector<std::pair<Endpoint, L4Proto>> vips_;
};

// Where a destination is reached: egress port and next-hop address.
struct NextHop {
    uint16_t port = 0;
    uint32_t ip = 0;  // network order
    bool ok = false;
};
using RouteFn = std::function<NextHop(uint32_t ip_net)>;

// Health of a backend as one VIP's check sees it.
struct BackendHealth {
    BackendState state = BackendState::up;  // up, draining (HTTP 503) or down
};

// Operator's and balancer's say on one backend within one VIP.
struct BackendAdmin {
    bool drained = false;                     // ferryctl drain
    std::optional<uint32_t> weight_override;  // ferryctl weight
    double weight_factor = 1.0;               // load-aware / slow-start factor, 0..1
    bool cut = false;                         // existing flows are dropped too (drain timeout passed)
};

using VipBackend = std::pair<uint32_t, uint32_t>;  // (VIP id, backend id)

// Everything the control thread knows beyond the config file.
struct RuntimeState {
    std::map<VipBackend, BackendHealth> health;
    std::map<VipBackend, BackendAdmin> admin;
    std::set<uint32_t> cut_removed;  // backends gone from every VIP whose drain timeout passed
};

class Snapshot {
public:
    std::vector<VipEntry> vips;          // by VIP id
    std::vector<BackendEntry> backends;  // by backend id
    uint64_t generation = 0;

    // VIP id for (ip, port, proto) or kNone. Hot path.
    uint32_t find_vip(uint32_t ip, uint16_t port, uint8_t proto) const {
        const uint64_t key = index_key(ip, port, proto);
        for (uint32_t i = index_home(key);; i = (i + 1) & index_mask_) {
            const IndexSlot& s = index_[i];
            if (s.key == key) return s.vip;  // a free slot's key is 0, its vip kNone
            if (s.key == 0) return kNone;
        }
    }
    // True if ip is the address of any VIP (ARP, ping). Hot path.
    bool is_vip_address(uint32_t ip) const {
        for (uint32_t a : vip_addresses_)
            if (a == ip) return true;
        return false;
    }

    // Builds the index after vips is filled. Control thread.
    void build_index();

private:
    // (ip, port, proto) as one word, so a slot is checked with one compare.
    // Never 0 for a VIP (its protocol is not 0): 0 marks a free slot.
    struct IndexSlot {
        uint64_t key = 0;
        uint32_t vip = kNone;
    };
    static uint64_t index_key(uint32_t ip, uint16_t port, uint8_t proto) {
        return uint64_t(ip) | uint64_t(port) << 32 | uint64_t(proto) << 48;
    }
    // Fibonacci hashing: the top bits of the product, which depend on every
    // bit of the key (the low ones would miss the port and protocol).
    uint32_t index_home(uint64_t key) const { return uint32_t((key * 0x9e3779b97f4a7c15ull) >> index_shift_); }
    // Open addressing, a power of two long with at least one free slot; two
    // free slots until build_index(), so find_vip() answers kNone before it.
    std::vector<IndexSlot> index_ = std::vector<IndexSlot>(2);
    uint32_t index_mask_ = 1;    // index_.size() - 1, kept so a lookup need not compute it
    uint32_t index_shift_ = 63;  // 64 - log2(index_.size())
    std::vector<uint32_t> vip_addresses_;
};

// Effective weight a backend gets in its VIP's table right now.
// 0 when the backend must take no new flows.
uint32_t effective_weight(const BackendConfig& b, const BackendHealth* health, const BackendAdmin* admin);

// Builds a snapshot from a config and the control thread's runtime state.
// Backends known from earlier configs but absent now stay as `removed`, so
// their flows keep working. Throws on internal errors (control path).
std::shared_ptr<Snapshot> build_snapshot(const Config& cfg, IdRegistry& ids,
                                         const RuntimeState& runtime,
                                         const RouteFn& route, uint64_t generation);

}  // namespace ferry::dp
