// Local source ports of one worker for full NAT, per local address.
//
// The control path decides which ports belong to which worker (a partition of
// 1024..65535, optionally narrowed to ports whose RSS hash lands on the
// worker's queue) and hands the list over at start. The data path then takes
// and returns ports in O(1) with no allocation. Released ports go to the back
// of a FIFO so a port is reused as late as possible (backends' TIME_WAIT).
#pragma once

#include <cstdint>
#include <vector>

namespace ferry::flow {

// One worker's free full-NAT source ports: O(1) FIFO take/return, robust to
// bad releases, so the data path never searches or allocates for a port.
class NatPortPool {
public:
    // ports: host-order port numbers this pool owns (duplicates are dropped).
    // All start free, handed out first in the given order.
    explicit NatPortPool(std::vector<uint16_t> ports);

    // Takes a free port (host order). False when none is left (caller counts it).
    bool acquire(uint16_t& port);
    // Gives a port back. Ports not owned or already free are ignored and
    // counted (a double free never corrupts the pool).
    void release(uint16_t port);

    uint32_t available() const { return count_; }
    uint32_t total() const { return uint32_t(ring_.size()); }
    uint64_t exhausted() const { return exhausted_; }        // failed acquires
    uint64_t bad_releases() const { return bad_releases_; }

private:
    std::vector<uint16_t> ring_;   // FIFO of free ports
    std::vector<uint8_t> in_use_;  // 65536 flags: 1 = handed out; 2 = not ours
    uint32_t head_ = 0, count_ = 0;
    uint64_t exhausted_ = 0, bad_releases_ = 0;
};

// Splits [first, last] among `workers` so no two workers share a port:
// worker w gets the ports p with (p % workers) == w (ascending). Empty when
// workers == 0, worker >= workers or first > last.
std::vector<uint16_t> ports_for_worker(uint16_t first, uint16_t last, uint32_t workers, uint32_t worker);

}  // namespace ferry::flow
