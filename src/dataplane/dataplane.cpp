#include "dataplane/dataplane.hpp"

#include <rte_dev.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_random.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include <cstring>
#include <stdexcept>

#include "dataplane/log.hpp"

namespace ferry::dp {

namespace {
Dataplane* g_dataplane = nullptr;

std::string dpdk_error(int err) { return rte_strerror(err < 0 ? -err : err); }

std::runtime_error fail(const std::string& what) { return std::runtime_error(what); }
}  // namespace

Dataplane& dataplane() { return *g_dataplane; }

Dataplane::Dataplane(std::shared_ptr<const Config> cfg) : cfg_(std::move(cfg)) {
    unsigned workers = rte_lcore_count() - 1;
    if (workers == 0)
        throw fail("no worker lcore: give EAL at least two lcores (e.g. -l 0,1): the main one runs control");
    if (workers > 64) throw fail("at most 64 worker lcores are supported");

    const WorkerConfig& wc = cfg_->workers;
    uint32_t max_mtu = 1500;
    for (const auto& p : cfg_->ports) max_mtu = std::max<uint32_t>(max_mtu, p.mtu);
    uint16_t data_room = uint16_t(std::max<uint32_t>(RTE_MBUF_DEFAULT_BUF_SIZE, max_mtu + 18 + 4 + RTE_PKTMBUF_HEADROOM));
    // RX rings full of buffers, TX rings, bursts in flight, rings between threads.
    uint32_t ports_with_tap = uint32_t(cfg_->ports.size()) * 2;
    uint32_t need = ports_with_tap * workers * (wc.rx_descriptors + wc.tx_descriptors) + workers * 4096 + 1024;
    uint32_t n_mbufs = std::max(wc.mbufs, need);
    pool_ = rte_pktmbuf_pool_create("ferry_mbufs", n_mbufs, 256, 0, data_room, int(rte_socket_id()));
    if (!pool_)
        throw fail("cannot allocate " + std::to_string(n_mbufs) + " packet buffers: " + dpdk_error(rte_errno) +
                   " (not enough hugepages? reserve more, or lower workers.mbufs)");

    ports_.resize(cfg_->ports.size());
    for (size_t i = 0; i < cfg_->ports.size(); ++i) {
        ports_[i].name = cfg_->ports[i].name;
        setup_port(ports_[i], cfg_->ports[i]);
    }
    for (const auto& p : ports_) local_ips_.push_back(p.ip);
    for (auto& p : ports_) {
        p.nat_first = uint8_t(local_ips_.size());  // the loader keeps the total within kMaxLocalAddresses
        local_ips_.insert(local_ips_.end(), p.nat_ips.begin(), p.nat_ips.end());
    }
    if (local_ips_.size() > kMaxLocalAddresses) throw fail("too many local addresses (ports and nat_addresses)");
    std::vector<uint16_t> ids;
    for (const auto& p : ports_) ids.push_back(p.port_id);
    routes_ = std::make_unique<RouteTable>(*cfg_, ids);

    size_t rcu_size = rte_rcu_qsbr_get_memsize(workers);
    rcu_ = static_cast<rte_rcu_qsbr*>(rte_zmalloc("ferry_rcu", rcu_size, RTE_CACHE_LINE_SIZE));
    if (!rcu_ || rte_rcu_qsbr_init(rcu_, workers) != 0) throw fail("cannot set up RCU state");

    setup_workers();
    g_dataplane = this;
}

Dataplane::~Dataplane() {
    stop_workers();
    for (auto& p : ports_) {
        rte_eth_dev_stop(p.port_id);
        rte_eth_dev_close(p.port_id);
        if (p.has_exception) {
            rte_eth_dev_stop(p.exception_port_id);
            rte_eth_dev_close(p.exception_port_id);
        }
    }
    for (auto& w : workers_) {
        for (auto* b : w->tx) rte_free(b);
        rte_ring_free(w->to_control);
        if (w->from_control) {
            rte_mbuf* m;
            while (rte_ring_dequeue(w->from_control, reinterpret_cast<void**>(&m)) == 0) rte_pktmbuf_free(m);
            rte_ring_free(w->from_control);
        }
        for (auto* r : w->handoff_in) {
            if (!r) continue;
            rte_mbuf* m;
            while (rte_ring_dequeue(r, reinterpret_cast<void**>(&m)) == 0) rte_pktmbuf_free(m);
            rte_ring_free(r);
        }
    }
    rte_free(rcu_);
    routes_.reset();
    rte_mempool_free(pool_);
    g_dataplane = nullptr;
}

void Dataplane::setup_port(PortInfo& p, const PortConfig& pc) {
    uint16_t port_id;
    if (rte_eth_dev_get_port_by_name(pc.device.c_str(), &port_id) != 0) {
        if (pc.devargs.empty())
            throw fail(pc.loc.file + ":" + std::to_string(pc.loc.line) + ": port '" + pc.name + "': no such device '" +
                       pc.device + "' (bind the NIC to vfio-pci, pass --vdev, or set devargs)");
        int rc = rte_dev_probe(pc.devargs.c_str());
        if (rc != 0 || rte_eth_dev_get_port_by_name(pc.device.c_str(), &port_id) != 0)
            throw fail("port '" + pc.name + "': cannot create device '" + pc.devargs + "': " + dpdk_error(rc));
    }
    p.port_id = port_id;
    p.ip = pc.address.addr.v4_net();
    p.prefix_len = pc.address.length;
    for (const auto& a : pc.nat_addresses) p.nat_ips.push_back(a.v4_net());
    p.mtu = pc.mtu;

    rte_eth_dev_info info;
    int rc = rte_eth_dev_info_get(port_id, &info);
    if (rc != 0) throw fail("port '" + pc.name + "': cannot read device info: " + dpdk_error(rc));

    uint16_t queues = uint16_t(rte_lcore_count() - 1);
    if (queues > info.max_rx_queues || queues > info.max_tx_queues)
        throw fail("port '" + pc.name + "': device has " + std::to_string(info.max_rx_queues) + " RX / " +
                   std::to_string(info.max_tx_queues) + " TX queues, " + std::to_string(queues) +
                   " workers need one each (net_af_packet: add qpairs=N to its devargs)");

    // net_af_packet spreads packets over all of its qpairs whether or not they
    // are configured: a queue nobody polls would silently eat traffic.
    if (info.driver_name && std::strcmp(info.driver_name, "net_af_packet") == 0 && info.max_rx_queues != queues)
        throw fail("port '" + pc.name + "': net_af_packet has qpairs=" + std::to_string(info.max_rx_queues) +
                   " but there are " + std::to_string(queues) + " workers: set qpairs=" + std::to_string(queues) +
                   " in its devargs");

    rte_eth_conf conf{};
    // Ask for RSS on IP and ports, masked by what the device can hash.
    uint64_t rss_hf = (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP) & info.flow_type_rss_offloads;
    if (queues > 1 && rss_hf != 0) {
        conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
        conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
        p.rss = true;
    }
    // Checksums are updated incrementally in software (RFC 1624), which costs
    // less than preparing offload metadata; only fast mbuf free is requested.
    if (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE)
        conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE;

    rc = rte_eth_dev_configure(port_id, queues, queues, &conf);
    if (rc != 0) throw fail("port '" + pc.name + "': configure failed: " + dpdk_error(rc));
    uint16_t nb_rx = uint16_t(cfg_->workers.rx_descriptors), nb_tx = uint16_t(cfg_->workers.tx_descriptors);
    rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &nb_rx, &nb_tx);
    int socket = rte_eth_dev_socket_id(port_id);
    if (socket < 0) socket = int(rte_socket_id());
    for (uint16_t q = 0; q < queues; ++q) {
        rc = rte_eth_rx_queue_setup(port_id, q, nb_rx, unsigned(socket), nullptr, pool_);
        if (rc != 0) throw fail("port '" + pc.name + "': RX queue setup failed: " + dpdk_error(rc));
        rte_eth_txconf txc = info.default_txconf;
        txc.offloads = conf.txmode.offloads;
        rc = rte_eth_tx_queue_setup(port_id, q, nb_tx, unsigned(socket), &txc);
        if (rc != 0) throw fail("port '" + pc.name + "': TX queue setup failed: " + dpdk_error(rc));
    }
    rc = rte_eth_dev_set_mtu(port_id, pc.mtu);
    if (rc != 0) FERRY_LOG(WARNING, "port '%s': cannot set MTU %u (%s); keeping the device's", pc.name.c_str(), pc.mtu,
                           dpdk_error(rc).c_str());
    rte_ether_addr mac;
    rte_eth_macaddr_get(port_id, &mac);
    std::memcpy(p.mac, mac.addr_bytes, 6);
    rc = rte_eth_dev_start(port_id);
    if (rc != 0) throw fail("port '" + pc.name + "': start failed: " + dpdk_error(rc));
    rte_eth_allmulticast_enable(port_id);

    if (pc.exception_path) {
        p.exception_iface = pc.exception_iface.empty() ? "fe-" + pc.name : pc.exception_iface;
        setup_exception(p);
    }
    FERRY_LOG(INFO, "port '%s' (%s, id %u): %02x:%02x:%02x:%02x:%02x:%02x, %u queue(s), RSS %s%s%s", pc.name.c_str(),
              pc.device.c_str(), port_id, p.mac[0], p.mac[1], p.mac[2], p.mac[3], p.mac[4], p.mac[5], queues,
              p.rss ? "on" : "off (hand-off ring for return traffic)", p.has_exception ? ", host interface " : "",
              p.has_exception ? p.exception_iface.c_str() : "");
    if (!pc.nat_addresses.empty()) {
        std::string list = pc.address.addr.to_string();
        for (const auto& a : pc.nat_addresses) list += ", " + a.to_string();
        FERRY_LOG(INFO, "port '%s': full-NAT source addresses %s (rotating per backend)", pc.name.c_str(),
                  list.c_str());
    }
}

// The kernel sees host traffic through a tap interface with the port's MAC, so
// what it sends back goes out of the port as if the host owned the NIC.
void Dataplane::setup_exception(PortInfo& p) {
    char mac[32];
    snprintf(mac, sizeof mac, "%02x:%02x:%02x:%02x:%02x:%02x", p.mac[0], p.mac[1], p.mac[2], p.mac[3], p.mac[4],
             p.mac[5]);
    std::string name = "net_tap_" + p.name;
    std::string devargs = name + ",iface=" + p.exception_iface + ",mac=" + mac;
    int rc = rte_dev_probe(devargs.c_str());
    uint16_t id;
    if (rc != 0 || rte_eth_dev_get_port_by_name(name.c_str(), &id) != 0)
        throw fail("port '" + p.name + "': cannot create host interface " + p.exception_iface + ": " + dpdk_error(rc));
    uint16_t queues = uint16_t(rte_lcore_count() - 1);
    rte_eth_conf conf{};
    rc = rte_eth_dev_configure(id, queues, queues, &conf);
    if (rc != 0) throw fail("host interface " + p.exception_iface + ": configure failed: " + dpdk_error(rc));
    for (uint16_t q = 0; q < queues; ++q) {
        if (rte_eth_rx_queue_setup(id, q, 512, rte_socket_id(), nullptr, pool_) != 0 ||
            rte_eth_tx_queue_setup(id, q, 512, rte_socket_id(), nullptr) != 0)
            throw fail("host interface " + p.exception_iface + ": queue setup failed");
    }
    rte_eth_dev_set_mtu(id, p.mtu);
    rc = rte_eth_dev_start(id);
    if (rc != 0) throw fail("host interface " + p.exception_iface + ": start failed: " + dpdk_error(rc));
    p.has_exception = true;
    p.exception_port_id = id;
}

void Dataplane::setup_workers() {
    unsigned n = rte_lcore_count() - 1;
    nat_port_owner_.assign(65536, 0);
    for (uint32_t port = 0; port < 65536; ++port) nat_port_owner_[port] = uint8_t(port % n);

    uint16_t max_port_id = 0;
    for (const auto& p : ports_) {
        max_port_id = std::max(max_port_id, p.port_id);
        if (p.has_exception) max_port_id = std::max(max_port_id, p.exception_port_id);
    }
    unsigned lcore, idx = 0;
    RTE_LCORE_FOREACH_WORKER(lcore) {
        auto w = std::make_unique<WorkerContext>();
        w->index = idx;
        w->lcore = lcore;
        w->flows = std::make_unique<flow::FlowTable>(cfg_->workers.flow_capacity);
        for (size_t i = 0; i < local_ips_.size(); ++i)
            w->nat_ports.emplace_back(flow::ports_for_worker(kNatFirstPort, kNatLastPort, n, idx),
                                      uint32_t(rte_rand()), kMaxBackends);
        w->backend_counters.resize(kMaxBackends);
        w->vip_counters.resize(kMaxVips);
        w->tx.assign(max_port_id + 1u, nullptr);
        auto add_tx = [&](uint16_t port_id) {
            auto* b = static_cast<rte_eth_dev_tx_buffer*>(
                rte_zmalloc_socket("ferry_txbuf", RTE_ETH_TX_BUFFER_SIZE(kMaxBurst), 0, int(rte_socket_id())));
            if (!b) throw fail("out of memory for TX buffers");
            rte_eth_tx_buffer_init(b, kMaxBurst);
            w->tx[port_id] = b;
        };
        for (const auto& p : ports_) {
            add_tx(p.port_id);
            if (p.has_exception) add_tx(p.exception_port_id);
        }
        std::string name = "ferry_ctl_" + std::to_string(idx);
        w->to_control = rte_ring_create_elem(name.c_str(), sizeof(ControlMsg), 1024, int(rte_socket_id()),
                                             RING_F_SP_ENQ | RING_F_SC_DEQ);
        name = "ferry_tx_" + std::to_string(idx);
        w->from_control = rte_ring_create(name.c_str(), 1024, int(rte_socket_id()), RING_F_SP_ENQ | RING_F_SC_DEQ);
        if (!w->to_control || !w->from_control) throw fail("cannot create control rings");
        workers_.push_back(std::move(w));
        ++idx;
    }
    for (auto& dst : workers_) {
        dst->handoff_in.assign(n, nullptr);
        for (auto& src : workers_) {
            if (src == dst) continue;
            std::string name = "ferry_ho_" + std::to_string(src->index) + "_" + std::to_string(dst->index);
            rte_ring* r = rte_ring_create(name.c_str(), 4096, int(rte_socket_id()), RING_F_SP_ENQ | RING_F_SC_DEQ);
            if (!r) throw fail("cannot create hand-off rings");
            dst->handoff_in[src->index] = r;
        }
    }
}

void Dataplane::launch_workers() {
    for (auto& w : workers_) {
        if (rte_rcu_qsbr_thread_register(rcu_, w->index) != 0) throw fail("RCU register failed");
        int rc = rte_eal_remote_launch(worker_main, w.get(), w->lcore);
        if (rc != 0) throw fail("cannot launch worker on lcore " + std::to_string(w->lcore));
    }
    launched_ = true;
}

void Dataplane::stop_workers() {
    quit.store(true, std::memory_order_release);
    if (launched_) rte_eal_mp_wait_lcore();
    launched_ = false;
}

const Snapshot* Dataplane::publish(const Snapshot* next) {
    return snapshot_.exchange(next, std::memory_order_acq_rel);
}

uint64_t Dataplane::rcu_token() { return rte_rcu_qsbr_start(rcu_); }

bool Dataplane::rcu_done(uint64_t token) { return rte_rcu_qsbr_check(rcu_, token, false) == 1; }

bool Dataplane::send_from_control(uint16_t port_id, const uint8_t* frame, size_t len) {
    rte_mbuf* m = rte_pktmbuf_alloc(pool_);
    if (!m) return false;
    char* dst = rte_pktmbuf_append(m, uint16_t(len));
    if (!dst) {
        rte_pktmbuf_free(m);
        return false;
    }
    std::memcpy(dst, frame, len);
    m->port = port_id;
    if (rte_ring_enqueue(workers_[0]->from_control, m) != 0) {
        rte_pktmbuf_free(m);
        return false;
    }
    return true;
}

unsigned Dataplane::poll_control(ControlMsg* out, unsigned max) {
    unsigned n = 0;
    for (auto& w : workers_) {
        if (n >= max) break;
        n += rte_ring_dequeue_burst_elem(w->to_control, out + n, sizeof(ControlMsg), max - n, nullptr);
    }
    return n;
}

WorkerCounters Dataplane::worker_totals() const {
    WorkerCounters s;
    for (const auto& w : workers_) s.add_relaxed(w->counters);
    return s;
}

BackendCounters Dataplane::backend_totals(uint32_t backend_id) const {
    BackendCounters s;
    if (backend_id >= kMaxBackends) return s;
    for (const auto& w : workers_) s.add_relaxed(w->backend_counters[backend_id]);
    return s;
}

VipCounters Dataplane::vip_totals(uint32_t vip_id) const {
    VipCounters s;
    if (vip_id >= kMaxVips) return s;
    for (const auto& w : workers_) s.add_relaxed(w->vip_counters[vip_id]);
    return s;
}

const PortInfo* Dataplane::port_by_id(uint16_t port_id) const {
    for (const auto& p : ports_)
        if (p.port_id == port_id) return &p;
    return nullptr;
}

}  // namespace ferry::dp
