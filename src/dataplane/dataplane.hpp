// The data plane's run-time objects: ports, worker contexts, rings between
// threads, the snapshot pointer and its RCU, and the neighbour and route
// tables. Created by ferryd after EAL init; the control thread and workers
// share it, each touching only what the comments say.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "dataplane/counters.hpp"
#include "dataplane/neighbour_table.hpp"
#include "dataplane/route_table.hpp"
#include "dataplane/snapshot.hpp"
#include "dataplane/steering.hpp"
#include "flow/flow_table.hpp"
#include "flow/nat_ports.hpp"

struct rte_mempool;
struct rte_ring;
struct rte_rcu_qsbr;
struct rte_eth_dev_tx_buffer;

namespace ferry::dp {

inline constexpr uint32_t kMaxBurst = 512;

// One data-plane port at run time (from PortConfig plus what DPDK reports).
struct PortInfo {
    std::string name;
    uint16_t port_id = 0;
    uint32_t ip = 0;             // network order: Ferry's address, also its NAT source
    uint8_t prefix_len = 0;
    // More full-NAT source addresses of this port (nat_addresses), network order, and the local
    // address index of the first: nat_ips[k] has index nat_first + k (see local_ips()).
    std::vector<uint32_t> nat_ips;
    uint8_t nat_first = 0;
    uint8_t mac[6] = {};
    uint16_t mtu = 1500;
    bool has_exception = false;
    uint16_t exception_port_id = 0;   // the kernel interface (net_tap) for host traffic
    std::string exception_iface;
    bool rss = false;                 // RSS spreads flows over the workers' queues
};

// A message from a worker to the control thread (16 bytes, rte_ring element).
struct ControlMsg {
    // learn: a neighbour answered or asked us; refresh: a gratuitous ARP, which
    // only updates a neighbour already known (never adds one, as Linux by default).
    enum Kind : uint8_t { learn = 1, resolve = 2, refresh = 3 };
    uint32_t ip = 0;      // network order
    uint16_t port = 0;    // DPDK port id it was seen on / must be resolved on
    uint8_t mac[6] = {};  // learn and refresh
    uint8_t kind = 0;
    uint8_t pad[3] = {};
};
static_assert(sizeof(ControlMsg) == 16);

// Everything one worker lcore owns. Only that worker writes it (the counters
// are read by others with relaxed loads).
struct WorkerContext {
    uint32_t index = 0;           // 0..workers-1: queue id on every port
    unsigned lcore = 0;
    std::unique_ptr<flow::FlowTable> flows;
    std::vector<flow::NatPortAllocator> nat_ports;  // by local address index (see Dataplane::local_ips)
    WorkerCounters counters;
    std::vector<BackendCounters> backend_counters;  // kMaxBackends
    std::vector<VipCounters> vip_counters;          // kMaxVips
    std::vector<rte_eth_dev_tx_buffer*> tx;       // by DPDK port id
    rte_ring* to_control = nullptr;     // ControlMsg elements, SP/SC
    rte_ring* from_control = nullptr;   // mbufs the control thread wants sent, SP/SC
    std::vector<rte_ring*> handoff_in;  // from worker j (index j), SP/SC; null for self
};

class Dataplane {
public:
    // Sets up ports, exception interfaces, pools, rings and tables for the
    // worker lcores EAL was given. Throws std::runtime_error with one clear line.
    Dataplane(std::shared_ptr<const Config> cfg);
    ~Dataplane();

    void launch_workers();
    void stop_workers();  // sets quit, waits for every worker

    // Control thread: publish a new snapshot; returns the old pointer, which
    // may be freed once retire_wait() says every worker has moved on.
    const Snapshot* publish(const Snapshot* next);
    uint64_t rcu_token();              // after publish
    bool rcu_done(uint64_t token);     // non-blocking check

    // Control thread: queue a frame for transmission through worker 0.
    bool send_from_control(uint16_t port_id, const uint8_t* frame, size_t len);
    // Control thread: take the messages workers left for it.
    unsigned poll_control(ControlMsg* out, unsigned max);

    const std::vector<PortInfo>& ports() const { return ports_; }
    // Ferry's addresses by local address index (network order): the ports' addresses in port
    // order (index = port index), then each port's nat_ips in port order. FlowValue::nat_addr
    // and the full-NAT port allocators use these indices.
    const std::vector<uint32_t>& local_ips() const { return local_ips_; }
    const PortInfo* port_by_id(uint16_t port_id) const;
    std::vector<std::unique_ptr<WorkerContext>>& workers() { return workers_; }
    NeighbourTable& neighbours() { return neighbours_; }
    const RouteTable& routes() const { return *routes_; }
    const Config& config() const { return *cfg_; }
    const Snapshot* snapshot() const { return snapshot_.load(std::memory_order_acquire); }
    // Sums over every worker (relaxed reads: a report may be a burst behind).
    WorkerCounters worker_totals() const;
    BackendCounters backend_totals(uint32_t backend_id) const;  // zero for ids >= kMaxBackends
    VipCounters vip_totals(uint32_t vip_id) const;              // zero for ids >= kMaxVips
    uint32_t worker_count() const { return uint32_t(workers_.size()); }
    rte_mempool* pool() const { return pool_; }

    // Worker-side state shared read-only: which worker owns a NAT port.
    const std::vector<uint8_t>& nat_port_owner() const { return nat_port_owner_; }
    std::atomic<bool> quit{false};

    // Local ports used for full NAT, split among workers.
    static constexpr uint16_t kNatFirstPort = 1024;
    static constexpr uint16_t kNatLastPort = 65535;

    friend int worker_main(void*);
    rte_rcu_qsbr* rcu() const { return rcu_; }

private:
    void setup_port(PortInfo& p, const PortConfig& pc);
    void setup_exception(PortInfo& p);
    void setup_workers();

    std::shared_ptr<const Config> cfg_;
    std::vector<PortInfo> ports_;
    std::vector<uint32_t> local_ips_;
    std::vector<std::unique_ptr<WorkerContext>> workers_;
    rte_mempool* pool_ = nullptr;
    rte_rcu_qsbr* rcu_ = nullptr;
    std::unique_ptr<RouteTable> routes_;
    NeighbourTable neighbours_;
    std::atomic<const Snapshot*> snapshot_{nullptr};
    std::vector<uint8_t> nat_port_owner_;  // 65536 entries
    bool launched_ = false;
};

// Body of a worker lcore (rte_eal_remote_launch); arg is the WorkerContext.
int worker_main(void* arg);

// The Dataplane the workers run against (set before launch).
Dataplane& dataplane();

}  // namespace ferry::dp
