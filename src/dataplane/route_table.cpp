#include "dataplane/route_table.hpp"

#include <rte_byteorder.h>
#include <rte_lpm.h>

#include <atomic>
#include <stdexcept>

namespace ferry::dp {

RouteTable::RouteTable(const Config& cfg, const std::vector<uint16_t>& port_ids) {
    static std::atomic<unsigned> seq{0};
    std::string name = "ferry_routes_" + std::to_string(seq++);
    rte_lpm_config lc{};
    lc.max_rules = 1024;
    lc.number_tbl8s = 256;
    lpm_ = rte_lpm_create(name.c_str(), SOCKET_ID_ANY, &lc);
    if (!lpm_) throw std::runtime_error("cannot create route table (rte_lpm_create failed)");

    for (size_t i = 0; i < cfg.ports.size(); ++i) {
        const PortConfig& p = cfg.ports[i];
        uint32_t mask = p.address.length ? ~uint32_t(0) << (32 - p.address.length) : 0;
        routes_.push_back({p.address.addr.v4_host() & mask, p.address.length, port_ids[i], 0});
        if (p.gateway) routes_.push_back({0, 0, port_ids[i], p.gateway->v4_net()});
    }
    for (size_t r = 0; r < routes_.size(); ++r) {
        int rc = rte_lpm_add(lpm_, routes_[r].prefix, routes_[r].length, uint32_t(r));
        if (rc < 0) throw std::runtime_error("cannot add route: rte_lpm_add failed");
    }
}

RouteTable::~RouteTable() { rte_lpm_free(lpm_); }

NextHop RouteTable::lookup(uint32_t dst_net) const {
    uint32_t idx;
    if (rte_lpm_lookup(lpm_, rte_be_to_cpu_32(dst_net), &idx) != 0) return {};
    const Route& r = routes_[idx];
    return NextHop{r.port, r.gateway ? r.gateway : dst_net, true};
}

}  // namespace ferry::dp
