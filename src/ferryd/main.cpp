// ferryd: the Ferry load balancer daemon.
//
//   ferryd [EAL options] -- -c /etc/ferry/ferry.conf
//   ferryd --check-config FILE        (no DPDK, like nginx -t)
//
// main() parses Ferry's own options, loads the config, initialises EAL, sets
// up the data plane, launches the workers and runs the control thread on the
// main lcore until SIGINT/SIGTERM. SIGHUP reloads the config.
#include <rte_eal.h>
#include <rte_errno.h>

#include <getopt.h>
#include <signal.h>
#include <systemd/sd-daemon.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "config/config_loader.hpp"
#include "control/control_plane.hpp"
#include "control/telemetry.hpp"
#include "dataplane/dataplane.hpp"
#include "dataplane/log.hpp"

namespace {

std::atomic<bool> g_stop{false};
std::atomic<bool> g_reload{false};

void on_signal(int sig) {
    if (sig == SIGHUP)
        g_reload.store(true);
    else
        g_stop.store(true);
}

void usage(FILE* out) {
    std::fprintf(out,
                 "usage: ferryd [EAL options] -- -c FILE\n"
                 "       ferryd --check-config FILE\n"
                 "\n"
                 "Ferry options (after --):\n"
                 "  -c, --config FILE        configuration file (default /etc/ferry/ferry.conf)\n"
                 "  -t, --check-config FILE  validate FILE and exit: 0 if valid, 1 with file:line: reason\n"
                 "  -h, --help               this text\n"
                 "  -V, --version            print the version\n"
                 "EAL options come first: e.g. -l 0,1 (the first lcore runs control, the others\n"
                 "are workers), --vdev, -a PCI, --file-prefix. See docs/OPERATIONS.md.\n");
}

int check_config(const std::string& path) {
    ferry::ConfigLoadResult r = ferry::load_config_file(path);
    for (const auto& e : r.errors) std::fprintf(stderr, "%s\n", e.to_string().c_str());
    if (!r.ok()) {
        std::fprintf(stderr, "ferryd: %s: %zu problem(s), configuration refused\n", path.c_str(), r.errors.size());
        return 1;
    }
    std::printf("ferryd: %s: configuration is valid (%zu port(s), %zu VIP(s))\n", path.c_str(), r.config->ports.size(),
                r.config->vips.size());
    return 0;
}

struct Options {
    std::string config = "/etc/ferry/ferry.conf";
    std::string check;
    bool help = false, version = false, bad = false;
};

Options parse_options(int argc, char** argv) {
    Options o;
    static const option longopts[] = {{"config", required_argument, nullptr, 'c'},
                                      {"check-config", required_argument, nullptr, 't'},
                                      {"help", no_argument, nullptr, 'h'},
                                      {"version", no_argument, nullptr, 'V'},
                                      {nullptr, 0, nullptr, 0}};
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "c:t:hV", longopts, nullptr)) != -1) {
        switch (c) {
            case 'c': o.config = optarg; break;
            case 't': o.check = optarg; break;
            case 'h': o.help = true; break;
            case 'V': o.version = true; break;
            default: o.bad = true;
        }
    }
    if (optind < argc) {
        std::fprintf(stderr, "ferryd: unexpected argument '%s'\n", argv[optind]);
        o.bad = true;
    }
    return o;
}

}  // namespace

int main(int argc, char** argv) {
    // Without "--", a first argument of ours means no EAL at all (check-config, help).
    int dashdash = -1;
    for (int i = 1; i < argc; ++i)
        if (std::strcmp(argv[i], "--") == 0) {
            dashdash = i;
            break;
        }
    if (dashdash < 0 && argc > 1 &&
        (!std::strncmp(argv[1], "--check-config", 14) || !std::strcmp(argv[1], "-t") || !std::strcmp(argv[1], "--help") ||
         !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "--version") || !std::strcmp(argv[1], "-V"))) {
        dashdash = 0;
    }
    Options opt;
    if (dashdash >= 0) {
        std::vector<char*> ours{argv[0]};
        for (int i = dashdash + 1; i < argc; ++i) ours.push_back(argv[i]);
        opt = parse_options(int(ours.size()), ours.data());
    }
    if (opt.bad) {
        usage(stderr);
        return 2;
    }
    if (opt.help) {
        usage(stdout);
        return 0;
    }
    if (opt.version) {
        std::printf("ferryd %s\n", FERRY_VERSION);
        return 0;
    }
    if (!opt.check.empty()) return check_config(opt.check);

    ferry::ConfigLoadResult loaded = ferry::load_config_file(opt.config);
    if (!loaded.ok()) {
        for (const auto& e : loaded.errors) std::fprintf(stderr, "%s\n", e.to_string().c_str());
        std::fprintf(stderr, "ferryd: %s: configuration refused, not starting\n", opt.config.c_str());
        return 1;
    }

    // SIGINT/SIGTERM/SIGHUP go to the main (control) thread only: they are
    // blocked here, so every thread EAL and the control plane start inherits
    // the block, and unblocked in this thread once all are running. A signal
    // landing on another thread made its blocking call fail with EINTR: DPDK's
    // telemetry thread quits on an accept() error ("Error with accept,
    // telemetry thread quitting"), seen after repeated SIGHUP reloads. The
    // handler also restarts interrupted calls, for threads started later.
    struct sigaction sa{};
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGHUP, &sa, nullptr);
    sigset_t ours;
    sigemptyset(&ours);
    sigaddset(&ours, SIGINT);
    sigaddset(&ours, SIGTERM);
    sigaddset(&ours, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &ours, nullptr);

    int eal_argc = dashdash < 0 ? argc : dashdash;
    int rc = rte_eal_init(eal_argc, argv);
    if (rc < 0) {
        std::fprintf(stderr, "ferryd: cannot initialise DPDK (EAL): %s. Check the EAL options (-l, --vdev, -a), "
                             "hugepages (dpdk-hugepages.py -s) and that you are root.\n",
                     rte_strerror(rte_errno));
        return 1;
    }
    ferry::log_init();

    int status = 0;
    try {
        ferry::dp::Dataplane dp(loaded.config);
        ferry::control::ControlPlane cp(dp, loaded.config);
        ferry::control::register_telemetry(cp);
        cp.start();
        dp.launch_workers();
        FERRY_LOG(INFO, "ferryd ready: %u worker(s), %zu port(s), %zu VIP(s), config %s", dp.worker_count(),
                  dp.ports().size(), loaded.config->vips.size(), opt.config.c_str());
        std::fflush(stdout);
        pthread_sigmask(SIG_UNBLOCK, &ours, nullptr);  // a signal sent during start-up is delivered now
        sd_notify(0, "READY=1");
        cp.run(g_stop, g_reload);
        sd_notify(0, "STOPPING=1");
        FERRY_LOG(INFO, "stopping");
        dp.stop_workers();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "ferryd: %s\n", e.what());
        status = 1;
    }
    rte_eal_cleanup();
    return status;
}
