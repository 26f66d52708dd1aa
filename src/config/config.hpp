// The validated, immutable configuration of one ferryd instance.
//
// The loader (config_loader.hpp) is the only producer; everything else reads a
// `std::shared_ptr<const Config>`. Every struct keeps the source line it came
// from so later checks (reload diffs, runtime refusals) can still point at it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/ip_address.hpp"

namespace ferry {

// Where in the config file an item was written.
struct SourceLoc {
    std::string file;
    int line = 0;
};

// Extra full-NAT source addresses a port may have (nat_addresses), and how many local addresses
// (ports plus their NAT addresses) the data plane can tell apart: a flow keeps the index of its
// source address in one byte (flow::FlowValue::nat_addr).
inline constexpr size_t kMaxNatAddressesPerPort = 16;
inline constexpr size_t kMaxLocalAddresses = 256;

// One DPDK port Ferry owns: a NIC (PCI address) or a virtual device.
struct PortConfig {
    std::string name;        // operator's label, e.g. "client"; unique
    std::string device;      // ethdev name as DPDK knows it ("0000:01:00.0", "net_af_packet0")
    std::string devargs;     // optional: probe this vdev at start ("net_af_packet0,iface=veth1")
    IpPrefix address;        // Ferry's own address on this port, e.g. 10.0.0.1/24
    std::optional<IpAddr> gateway;  // default route via this port, if set
    // More full-NAT source addresses inside `address` (IPv4, distinct): new full-NAT flows to a
    // backend behind this port rotate over `address` and these. Empty: `address` alone.
    std::vector<IpAddr> nat_addresses;
    uint16_t mtu = 1500;     // 68..9000
    bool exception_path = true;      // hand host traffic to a kernel interface
    std::string exception_iface;     // kernel name of that interface; default "fe-<name>"
    SourceLoc loc;
};

// Settings shared by all worker lcores (which lcores: EAL's -l / --lcores).
struct WorkerConfig {
    uint32_t burst_size = 32;             // 1..512
    uint32_t flow_capacity = 1u << 20;    // flow entries per worker, 1024..64M
    uint32_t rx_descriptors = 1024;       // 64..16384
    uint32_t tx_descriptors = 1024;       // 64..16384
    uint32_t mbufs = 16383;               // mbuf pool size per port/socket, 1023..16M
    uint32_t idle_sleep_us = 0;           // 0 = busy poll; else sleep this long after an empty poll, 0..10000
};

enum class ForwardMode : uint8_t { nat, dnat };
enum class SchedulerKind : uint8_t { maglev, round_robin, least_conn, two_choices };
enum class HashKey : uint8_t { five_tuple, source_ip };
enum class HealthCheckKind : uint8_t { none, tcp, http };
enum class DownFlowPolicy : uint8_t { keep, drop };

// How a backend's health is probed; a VIP sets the default, a backend may override.
struct HealthCheckConfig {
    HealthCheckKind kind = HealthCheckKind::tcp;
    uint16_t port = 0;             // 0 = the backend's own port
    std::string path = "/health";  // http only
    uint16_t expect_status = 200;  // http only, 100..599
    uint32_t interval_ms = 1000;   // 50..3600000
    uint32_t timeout_ms = 500;     // 10..3600000, <= interval_ms
    uint32_t rise = 2;             // 1..100
    uint32_t fall = 3;             // 1..100
};

// Idle timeouts of flow entries by state, in seconds.
struct FlowTimeouts {
    uint32_t tcp_syn = 10;            // handshake not finished
    uint32_t tcp_established = 900;   // long enough for slow prefills and idle keep-alive
    uint32_t tcp_closing = 10;        // after FIN or RST
    uint32_t udp = 30;
};

// Which server's metric names a load scrape reads (see balance/prom_parser.hpp).
enum class LoadMetricsFormat : uint8_t { vllm, tgi, triton };
// How the series of a queue or batch metric (one per engine, model, ...) fold into one value.
enum class LoadAggregate : uint8_t { sum, max };

// Load-aware weights for a VIP's backends: scrape each backend's Prometheus metrics and scale its
// weight by a factor in [floor, 1] that falls as its queue grows or its KV cache fills. The
// tuning fields mirror balance::LoadFactorConfig and have its defaults.
struct LoadAwareConfig {
    bool enabled = false;            // a VIP without a load_aware group: off
    LoadMetricsFormat format = LoadMetricsFormat::vllm;
    std::string path = "/metrics";   // starts with '/'
    uint16_t port = 0;               // 0 = the backend's own port
    uint32_t interval_ms = 1000;     // 100..3600000
    uint32_t timeout_ms = 500;       // 10..3600000, <= interval_ms
    double floor = 0.1;              // 0..1: smallest factor
    double target_queue = 4.0;       // > 0 (at most 1e6): waiting requests that halve the factor
    double kv_threshold = 0.8;       // 0..1 (excl. 1): KV cache usage where its term starts to fall
    double queue_weight = 1.0;       // 0..1: how much the queue can take away
    double kv_weight = 1.0;          // 0..1: how much KV cache pressure can take away
    double smoothing = 0.3;          // (0, 1]: EWMA weight of the newest scrape; 1 = none
    double hysteresis = 0.05;        // 0..1: publish a new factor when it moved this far
    LoadAggregate aggregate = LoadAggregate::sum;  // queue/running series; KV usage always takes the max
    // Latency histograms to read (base names: <name>_sum, <name>_count); unset = the format's
    // own (see balance/prom_parser.hpp), "" = none.
    std::optional<std::string> ttft_metric;
    std::optional<std::string> tpot_metric;

    friend bool operator==(const LoadAwareConfig&, const LoadAwareConfig&) = default;
};

// Which latency drives a latency-aware weight (balance/latency_factor.hpp).
enum class LatencySignal : uint8_t {
    connect,  // SYN to SYN-ACK through the data plane (TCP VIPs)
    probe,    // the health probe's round trip (tcp or http checks)
    ttft,     // server-reported time to first token (scraped histogram)
    tpot,     // server-reported time per output token (scraped histogram)
};
// The signal's name as the config file spells it.
inline const char* to_string(LatencySignal s) {
    switch (s) {
        case LatencySignal::connect: return "connect";
        case LatencySignal::probe: return "probe";
        case LatencySignal::ttft: return "ttft";
        case LatencySignal::tpot: return "tpot";
    }
    return "?";
}

// Latency-aware weights for a VIP's backends: a backend slower than the VIP's reference (the lower
// median of its healthy backends) gets its weight scaled by clamp((ref / own)^sensitivity, floor, 1),
// smoothed and with hysteresis. ttft and tpot are scraped with the load_aware group's settings.
struct LatencyAwareConfig {
    bool enabled = false;            // a VIP without a latency_aware group: off
    LatencySignal signal = LatencySignal::ttft;
    double sensitivity = 1.0;        // (0, 10]: exponent of ref / own
    double tolerance_ms = 1.0;       // 0..60000: added to both latencies, so jitter below it hardly counts
    double floor = 0.1;              // 0..1: smallest factor
    double smoothing = 0.3;          // (0, 1]: EWMA weight of the newest factor; 1 = none
    double hysteresis = 0.05;        // 0..1: publish a new factor when it moved this far

    bool scrapes() const { return enabled && (signal == LatencySignal::ttft || signal == LatencySignal::tpot); }
    friend bool operator==(const LatencyAwareConfig&, const LatencyAwareConfig&) = default;
};

struct BackendConfig {
    Endpoint endpoint;               // address and port of the AI server
    uint32_t weight = 100;           // 0..65535; 0 = no new flows
    std::optional<HealthCheckConfig> health;  // overrides the VIP's
    SourceLoc loc;
};

struct VipConfig {
    std::string name;                // unique label, default "<addr>:<port>/<proto>"
    Endpoint endpoint;               // the virtual IP and port clients use
    L4Proto proto = L4Proto::tcp;
    ForwardMode mode = ForwardMode::nat;
    SchedulerKind scheduler = SchedulerKind::maglev;
    HashKey hash = HashKey::five_tuple;
    uint32_t table_size = 65537;     // Maglev table size: a prime, 13..655373 (or larger primes up to 4194301)
    FlowTimeouts timeouts;
    HealthCheckConfig health;        // default for its backends
    DownFlowPolicy down_flows = DownFlowPolicy::keep;
    uint32_t drain_timeout_s = 600;  // how long drained backends keep their flows
    LoadAwareConfig load_aware;      // off unless the VIP has a load_aware group
    LatencyAwareConfig latency_aware;  // off unless the VIP has a latency_aware group
    uint32_t slow_start_s = 0;       // 0..3600: ramp of a new or recovered backend; 0 = off
    std::vector<BackendConfig> backends;  // at least one
    SourceLoc loc;
};

// Operator-facing control plane settings.
struct ControlConfig {
    std::string socket_path = "/run/ferry/ferryd.sock";
    std::string socket_group;        // empty = root only
    std::string metrics_listen = "127.0.0.1:9108";  // empty = off
};

struct Config {
    std::string file;                // path it was loaded from
    std::vector<PortConfig> ports;   // at least one
    WorkerConfig workers;
    ControlConfig control;
    std::vector<VipConfig> vips;     // may be empty
};

}  // namespace ferry
