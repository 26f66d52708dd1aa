// ARP (RFC 826) for Ethernet/IPv4: parse, answer a request, build a request.

#include <cstring>

#include "packet/bytes.hpp"
#include "packet/packet.hpp"

namespace ferry::packet {

namespace {

using detail::load_be16;
using detail::load_raw32;
using detail::store_be16;
using detail::store_raw32;

constexpr size_t kMacLen = 6;
constexpr size_t kEthHdrLen = 14;
constexpr size_t kArpLen = 28;  // Ethernet/IPv4 ARP payload

// Offsets inside the ARP payload.
constexpr size_t kHtype = 0;
constexpr size_t kPtype = 2;
constexpr size_t kHlen = 4;
constexpr size_t kPlen = 5;
constexpr size_t kOp = 6;
constexpr size_t kSha = 8;
constexpr size_t kSpa = 14;
constexpr size_t kTha = 18;
constexpr size_t kTpa = 24;

constexpr uint16_t kHtypeEthernet = 1;
constexpr uint16_t kEtherIpv4 = 0x0800;
constexpr uint16_t kEtherArp = 0x0806;

}  // namespace

bool parse_arp(const uint8_t* data, size_t len, uint16_t l3_offset, Arp& out) {
    if (len < l3_offset || len - l3_offset < kArpLen) {
        return false;
    }
    const uint8_t* arp = data + l3_offset;
    if (load_be16(arp + kHtype) != kHtypeEthernet || load_be16(arp + kPtype) != kEtherIpv4 ||
        arp[kHlen] != kMacLen || arp[kPlen] != 4) {
        return false;
    }
    out.op = load_be16(arp + kOp);
    std::memcpy(out.sender_mac, arp + kSha, kMacLen);
    out.sender_ip = load_raw32(arp + kSpa);
    std::memcpy(out.target_mac, arp + kTha, kMacLen);
    out.target_ip = load_raw32(arp + kTpa);
    return true;
}

void make_arp_reply(uint8_t* data, uint16_t l3_offset, const uint8_t my_mac[6]) {
    uint8_t* arp = data + l3_offset;
    const uint32_t requester_ip = load_raw32(arp + kSpa);
    const uint32_t wanted_ip = load_raw32(arp + kTpa);

    // Ethernet: back to the requester, from us. Any VLAN tag stays as it is.
    std::memcpy(data, arp + kSha, kMacLen);
    std::memcpy(data + kMacLen, my_mac, kMacLen);

    store_be16(arp + kOp, kArpReply);
    std::memmove(arp + kTha, arp + kSha, kMacLen);
    store_raw32(arp + kTpa, requester_ip);
    std::memcpy(arp + kSha, my_mac, kMacLen);
    store_raw32(arp + kSpa, wanted_ip);
}

size_t build_arp_request(uint8_t* buf, const uint8_t src_mac[6], uint32_t src_ip, uint32_t target_ip) {
    std::memset(buf, 0xff, kMacLen);  // broadcast
    std::memcpy(buf + kMacLen, src_mac, kMacLen);
    store_be16(buf + 12, kEtherArp);

    uint8_t* arp = buf + kEthHdrLen;
    store_be16(arp + kHtype, kHtypeEthernet);
    store_be16(arp + kPtype, kEtherIpv4);
    arp[kHlen] = kMacLen;
    arp[kPlen] = 4;
    store_be16(arp + kOp, kArpRequest);
    std::memcpy(arp + kSha, src_mac, kMacLen);
    store_raw32(arp + kSpa, src_ip);
    std::memset(arp + kTha, 0, kMacLen);  // unknown: that is the question
    store_raw32(arp + kTpa, target_ip);
    return kEthHdrLen + kArpLen;
}

}  // namespace ferry::packet
