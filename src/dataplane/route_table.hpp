// IPv4 routes of the appliance: one connected route per port and a default
// route through a port's gateway. Looked up with rte_lpm on the reply path;
// built once at start (ports and gateways need a restart to change).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "dataplane/snapshot.hpp"

struct rte_lpm;

namespace ferry::dp {

// One route: where packets to `prefix` leave, and through which next hop.
struct Route {
    uint32_t prefix = 0;   // host order
    uint8_t length = 0;
    uint16_t port = 0;     // DPDK port id
    uint32_t gateway = 0;  // network order; 0 = on-link
};

class RouteTable {
public:
    // port_ids[i] is the DPDK port id of cfg.ports[i]. Throws on failure.
    RouteTable(const Config& cfg, const std::vector<uint16_t>& port_ids);
    ~RouteTable();
    RouteTable(const RouteTable&) = delete;
    RouteTable& operator=(const RouteTable&) = delete;

    // Hot path: egress and next hop for a destination (network order).
    NextHop lookup(uint32_t dst_net) const;
    const std::vector<Route>& routes() const { return routes_; }

private:
    rte_lpm* lpm_ = nullptr;
    std::vector<Route> routes_;
};

}  // namespace ferry::dp
