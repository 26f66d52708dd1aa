#include "dataplane/log.hpp"

namespace ferry {

int g_log_type = RTE_LOGTYPE_USER1;

void log_init() {
    int t = rte_log_register_type_and_pick_level("ferry", RTE_LOG_INFO);
    if (t >= 0) g_log_type = t;
}

}  // namespace ferry
