// Logging through rte_log under Ferry's own log type ("ferry"), so operators
// set its level with --log-level=ferry:debug like any DPDK component. Never
// used per packet.
#pragma once

#include <rte_log.h>

namespace ferry {
extern int g_log_type;
void log_init();
}  // namespace ferry

#define FERRY_LOG(level, fmt, ...) \
    rte_log(RTE_LOG_##level, ::ferry::g_log_type, "ferry: " fmt "\n" __VA_OPT__(, ) __VA_ARGS__)
