// Ferry's commands in DPDK telemetry (/ferry/...), readable with the stock
// dpdk-telemetry.py client. Callbacks run on DPDK's telemetry thread and read
// counters with relaxed loads and the control plane's published view.
#pragma once

namespace ferry::control {
class ControlPlane;
// Registers the /ferry/ commands; call before or after rte_eal_init.
void register_telemetry(ControlPlane& cp);
}  // namespace ferry::control
