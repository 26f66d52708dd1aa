// Prometheus /metrics rendering. Runs on the metrics server's threads: reads
// worker counters with relaxed loads and the control plane's published view
// (under its mutex), never the control thread's working state.
#include <rte_cycles.h>
#include <rte_ethdev.h>

#include "control/control_plane.hpp"
#include "ops/prom_writer.hpp"

namespace ferry::control {

std::string ControlPlane::render_metrics() const {
    View v = view();
    ops::PromWriter w;
    auto& workers = dp_.workers();
    const double tsc_hz = double(rte_get_tsc_hz());
    for (const auto& wk : workers) {
        const dp::WorkerCounters& c = wk->counters;
        ops::PromWriter::Labels l{{"worker", std::to_string(wk->index)}};
        w.counter("ferry_rx_packets", "Packets received from the ports.", dp::read_relaxed(c.rx_packets), l);
        w.counter("ferry_rx_bytes", "Bytes received from the ports.", dp::read_relaxed(c.rx_bytes), l);
        w.counter("ferry_tx_packets", "Packets sent.", dp::read_relaxed(c.tx_packets), l);
        w.counter("ferry_tx_bytes", "Bytes sent.", dp::read_relaxed(c.tx_bytes), l);
        w.counter("ferry_forwarded_packets", "VIP traffic forwarded to a backend or back to a client.",
                  dp::read_relaxed(c.forwarded), l);
        w.counter("ferry_flows_created", "Flow entries created.", dp::read_relaxed(c.flows_created), l);
        w.counter("ferry_flows_expired", "Flow entries removed by idle timeout.", dp::read_relaxed(c.flows_expired), l);
        w.counter("ferry_flows_closed", "Flow entries ended early (tuple reused after close, cut).",
                  dp::read_relaxed(c.flows_closed), l);
        w.counter("ferry_stateless_packets", "dnat packets forwarded by hash without a flow entry.",
                  dp::read_relaxed(c.stateless), l);
        w.counter("ferry_flows_picked_up", "dnat flows entered mid-stream (a packet without SYN and without an entry).",
                  dp::read_relaxed(c.flows_picked_up), l);
        auto miss = [&](const char* kind, uint64_t n) {
            w.counter("ferry_flow_misses", "Packets to a VIP without a flow entry, by kind.", n,
                      {{"worker", std::to_string(wk->index)}, {"kind", kind}});
        };
        miss("syn", dp::read_relaxed(c.flow_miss_syn));
        miss("non_syn", dp::read_relaxed(c.flow_miss_non_syn));
        miss("udp", dp::read_relaxed(c.flow_miss_udp));
        w.counter("ferry_handoff_out_packets", "Packets passed to the worker owning their flow.",
                  dp::read_relaxed(c.handoff_out), l);
        w.counter("ferry_handoff_in_packets", "Packets received from other workers.", dp::read_relaxed(c.handoff_in), l);
        w.counter("ferry_exception_in_packets", "Host traffic handed to the kernel interface.",
                  dp::read_relaxed(c.to_exception), l);
        w.counter("ferry_exception_out_packets", "Kernel traffic sent out of a port.",
                  dp::read_relaxed(c.from_exception), l);
        w.counter("ferry_arp_replies", "ARP requests answered for Ferry addresses and VIPs.",
                  dp::read_relaxed(c.arp_replies), l);
        w.counter("ferry_icmp_echo_replies", "Pings answered.", dp::read_relaxed(c.icmp_echo_replies), l);
        w.counter("ferry_icmp_errors_forwarded",
                  "ICMP errors (fragmentation needed, unreachable) about a flow passed on to its backend.",
                  dp::read_relaxed(c.icmp_errors_forwarded), l);
        w.counter("ferry_neighbour_requests", "Next hops the worker asked the control thread to resolve (ARP).",
                  dp::read_relaxed(c.neighbour_requests), l);
        w.gauge("ferry_flow_entries", "Occupied flow-table entries (a full-NAT flow uses two).",
                dp::read_relaxed(c.flow_entries), l);
        w.gauge("ferry_flows_closing", "Closed flows waiting out their closing timeout (removed then).",
                dp::read_relaxed(c.flows_closing), l);
        w.counter("ferry_closing_overflow", "Closed flows the closing queue had no room for (the sweep removes them).",
                  dp::read_relaxed(c.closing_overflow), l);
        w.gauge("ferry_flow_capacity", "Flow-table capacity in entries.", wk->flows->capacity(), l);
        w.counter("ferry_worker_busy_polls", "Worker polls that moved at least one packet.",
                  dp::read_relaxed(c.busy_polls), l);
        auto busy = [&](const char* stage, uint64_t cycles) {
            w.counter("ferry_worker_busy_seconds",
                      "Time of the polls that moved packets, by stage (rate = the share of the core doing work).",
                      double(cycles) / tsc_hz, {{"worker", std::to_string(wk->index)}, {"stage", stage}});
        };
        busy("rx", dp::read_relaxed(c.cycles_rx));
        busy("process", dp::read_relaxed(c.cycles_process));
        busy("tx", dp::read_relaxed(c.cycles_tx));
        busy("other", dp::read_relaxed(c.cycles_other));
        for (size_t i = 0; i < dp::kDropCount; ++i)
            w.counter("ferry_drops", "Packets dropped, by reason.", dp::read_relaxed(c.drops[i]),
                      {{"worker", std::to_string(wk->index)}, {"reason", dp::to_string(dp::Drop(i))}});
    }
    w.declare_gauge("ferry_backend_up", "1 if the backend takes new flows in this VIP.");
    for (const auto& row : v.backends) {
        ops::PromWriter::Labels l{{"vip", row.vip}, {"backend", row.backend}};
        w.gauge("ferry_backend_up", "1 if the backend takes new flows in this VIP.", row.effective_weight > 0 ? 1 : 0, l);
        w.gauge("ferry_backend_effective_weight", "Weight in the VIP's table now (0 = no new flows).",
                row.effective_weight, l);
        w.gauge("ferry_backend_configured_weight", "Weight from the config or the operator.", row.weight, l);
        w.gauge("ferry_backend_state", "Backend state (1 for the current one).", 1,
                {{"vip", row.vip}, {"backend", row.backend}, {"state", row.state}});
        w.gauge("ferry_backend_load_factor", "Load-aware weight factor (1 when off or unloaded).", row.load_factor, l);
        w.gauge("ferry_backend_latency_factor", "Latency-aware weight factor (1 when off or not slower).",
                row.latency_factor, l);
    }
    for (uint32_t id = 0; id < v.backend_endpoints.size() && id < dp::kMaxBackends; ++id) {
        dp::BackendCounters s = dp_.backend_totals(id);
        ops::PromWriter::Labels l{{"backend", v.backend_endpoints[id].to_string()}};
        w.counter("ferry_backend_packets", "Packets to and from the backend.", s.packets, l);
        w.counter("ferry_backend_bytes", "Bytes to and from the backend.", s.bytes, l);
        w.counter("ferry_backend_new_flows", "New flows sent to the backend.", s.new_flows, l);
        w.counter("ferry_backend_syns", "SYNs forwarded to the backend (the passive check's count).", s.syn_sent, l);
        w.counter("ferry_backend_synacks", "SYN-ACKs the backend returned through Ferry.", s.synack_seen, l);
        w.counter("ferry_backend_rsts_on_syn", "RSTs the backend answered a SYN with.", s.rst_on_syn, l);
        w.gauge("ferry_backend_active_flows", "Flows in the tables for the backend.",
                s.active_flows < 0 ? 0 : s.active_flows, l);
        w.counter("ferry_backend_connect_time_seconds", "SYN to SYN-ACK times of the backend's flows, summed.",
                  double(s.connect_us_sum) / 1e6, l);
        w.counter("ferry_backend_handshakes", "SYN-ACKs timed in ferry_backend_connect_time_seconds.",
                  s.connect_samples, l);
        auto lat = v.latency.find(id);
        if (lat == v.latency.end()) continue;
        if (lat->second.connect_s)
            w.gauge("ferry_backend_connect_latency_seconds", "Smoothed SYN to SYN-ACK time through Ferry.", *lat->second.connect_s, l);
        if (lat->second.ttft_s)
            w.gauge("ferry_backend_ttft_latency_seconds", "Smoothed time to first token the backend reports.", *lat->second.ttft_s, l);
        if (lat->second.tpot_s)
            w.gauge("ferry_backend_tpot_latency_seconds", "Smoothed time per output token the backend reports.",
                    *lat->second.tpot_s, l);
    }
    for (const auto& vip : v.config->vips) {
        uint32_t vid = v.vip_ids.count(vip.name) ? v.vip_ids.at(vip.name) : dp::kMaxVips;
        if (vid >= dp::kMaxVips) continue;
        dp::VipCounters c = dp_.vip_totals(vid);
        uint64_t packets = c.packets, bytes = c.bytes, new_flows = c.new_flows, no_backend = c.no_backend;
        ops::PromWriter::Labels l{{"vip", vip.name}};
        w.counter("ferry_vip_packets", "Packets of the VIP's flows, both directions.", packets, l);
        w.counter("ferry_vip_bytes", "Bytes of the VIP's flows, both directions.", bytes, l);
        w.counter("ferry_vip_new_flows", "New flows to the VIP.", new_flows, l);
        w.counter("ferry_vip_no_backend", "New flows dropped because no backend was usable.", no_backend, l);
    }
    for (const auto& p : dp_.ports()) {
        rte_eth_stats st;
        if (rte_eth_stats_get(p.port_id, &st) != 0) continue;
        ops::PromWriter::Labels l{{"port", p.name}};
        w.counter("ferry_port_rx_packets", "Packets the device received.", st.ipackets, l);
        w.counter("ferry_port_tx_packets", "Packets the device sent.", st.opackets, l);
        w.counter("ferry_port_rx_bytes", "Bytes the device received.", st.ibytes, l);
        w.counter("ferry_port_tx_bytes", "Bytes the device sent.", st.obytes, l);
        w.counter("ferry_port_rx_missed", "Packets the device dropped for lack of RX buffers.", st.imissed, l);
        w.counter("ferry_port_rx_errors", "Erroneous packets the device received.", st.ierrors, l);
        w.counter("ferry_port_tx_errors", "Packets the device failed to send.", st.oerrors, l);
        w.counter("ferry_port_rx_nombuf", "RX buffer allocation failures.", st.rx_nombuf, l);
    }
    w.gauge("ferry_config_generation", "Snapshots published since start.", v.generation);
    w.gauge("ferry_config_loaded_timestamp_seconds", "When the running config was loaded (Unix time).",
            std::chrono::duration_cast<std::chrono::seconds>(v.loaded_at.time_since_epoch()).count());
    return w.str();
}

}  // namespace ferry::control
