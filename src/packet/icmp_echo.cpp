// ICMP echo (ping) replies for the addresses Ferry owns.

#include <netinet/in.h>

#include <cstring>

#include "packet/bytes.hpp"
#include "packet/csum_impl.hpp"
#include "packet/packet.hpp"

namespace ferry::packet {

namespace {

using detail::apply_delta;
using detail::delta16;
using detail::load_raw16;
using detail::load_raw32;
using detail::store_raw16;
using detail::store_raw32;

constexpr size_t kMacLen = 6;
constexpr size_t kIcmpHdrLen = 8;
constexpr uint8_t kIcmpEchoReply = 0;
constexpr uint8_t kIcmpEchoRequest = 8;
constexpr uint8_t kReplyTtl = 64;

}  // namespace

bool make_icmp_echo_reply(uint8_t* data, size_t len, const Parsed& p, const uint8_t my_mac[6]) {
    if (p.proto != IPPROTO_ICMP || p.icmp_type != kIcmpEchoRequest) {
        return false;
    }
    const size_t l3_end = static_cast<size_t>(p.l3_offset) + p.l3_len;
    if (l3_end > len || static_cast<size_t>(p.l4_offset) + kIcmpHdrLen > l3_end) {
        return false;  // `p` does not describe this buffer
    }
    uint8_t* ip = data + p.l3_offset;
    uint8_t* icmp = data + p.l4_offset;
    if (icmp[0] != kIcmpEchoRequest) {
        return false;
    }

    // Ethernet: back to the sender, from our own MAC.
    std::memmove(data, data + kMacLen, kMacLen);
    std::memcpy(data + kMacLen, my_mac, kMacLen);

    // IPv4: swap addresses (the header sum does not change) and start the reply
    // with a fresh TTL like any new datagram; the TTL/protocol word changes.
    const uint32_t src = load_raw32(ip + 12);
    store_raw32(ip + 12, load_raw32(ip + 16));
    store_raw32(ip + 16, src);
    const uint16_t old_ttl_proto = load_raw16(ip + 8);
    ip[8] = kReplyTtl;
    store_raw16(ip + 10, apply_delta(load_raw16(ip + 10), delta16(old_ttl_proto, load_raw16(ip + 8))));

    // ICMP: type 8 -> 0 in the type/code word; identifier, sequence and data stay.
    const uint16_t old_type_code = load_raw16(icmp);
    icmp[0] = kIcmpEchoReply;
    store_raw16(icmp + 2, apply_delta(load_raw16(icmp + 2), delta16(old_type_code, load_raw16(icmp))));
    return true;
}

}  // namespace ferry::packet
