// Bounds-checked parsing of the headers Ferry steers by, and in-place
// address/port rewrites with incremental checksums (RFC 1624).
//
// Pure code: works on a plain byte span, so it is tested with hand-built
// packets and benchmarked without EAL. The data path passes
// rte_pktmbuf_mtod(m) and rte_pktmbuf_data_len(m) (single-segment mbufs).
#pragma once

#include <cstddef>
#include <cstdint>

namespace ferry::packet {

// Why a frame was not parsed as forwardable IPv4 TCP/UDP/ICMP. Each value is a
// drop (or exception-path) counter in the data plane, so names are stable.
enum class ParseResult : uint8_t {
    ok = 0,
    truncated_l2,      // shorter than an Ethernet (+VLAN) header
    arp,               // ARP: handled by the ARP code, not an error
    ipv6,              // not handled yet: exception path
    other_ethertype,   // LLDP, stacked VLANs, ...: exception path
    truncated_l3,      // shorter than 20 bytes of IPv4 or than IHL says
    bad_ip_version,    // version field is not 4
    bad_ihl,           // IHL < 5
    bad_total_length,  // IPv4 total length < IHL*4 or > bytes present
    fragment,          // MF set or offset != 0: not steerable by ports
    truncated_l4,      // TCP/UDP/ICMP header cut short (or TCP data offset < 5)
    other_l4,          // IPv4 with a protocol other than TCP/UDP/ICMP
    count_             // number of values, for counter arrays
};
const char* to_string(ParseResult r);

// Offsets and fields of one parsed frame: parse() reads each header once, and
// the flow lookup, the rewrites and the counters then use these without touching
// the headers again. Addresses and ports stay in network byte order, exactly as
// in the packet, so comparisons need no swaps.
struct Parsed {
    uint16_t l3_offset = 0;    // start of the IPv4 header (14, or 18 with one 802.1Q tag)
    uint16_t l4_offset = 0;    // start of TCP/UDP/ICMP header
    uint16_t l3_len = 0;       // IPv4 total length from the header
    uint16_t vlan_tci = 0;     // whole TCI (PCP/DEI/VID), host order; 0 when untagged
    bool has_vlan = false;
    bool has_ip_options = false;  // IHL > 5 (parsed fine, counted by the caller if it cares)
    uint8_t proto = 0;         // IPPROTO_TCP / IPPROTO_UDP / IPPROTO_ICMP
    uint8_t tcp_flags = 0;     // TCP flags byte (FIN=0x01 SYN=0x02 RST=0x04 PSH=0x08 ACK=0x10); 0 unless TCP
    uint32_t src_ip = 0;       // network order
    uint32_t dst_ip = 0;       // network order
    uint16_t src_port = 0;     // network order; ICMP echo: identifier, 0 otherwise
    uint16_t dst_port = 0;     // network order; ICMP: 0
    uint8_t icmp_type = 0;     // ICMP only
};

// Parses Ethernet (+ at most one 802.1Q tag), IPv4 and the L4 header.
// Never reads past data[len). On anything but ok, `out` holds what was
// parsed so far (at least l3_offset when the ethertype was read).
// Inline (packet_inl.hpp): a shortcut for the common frame, untagged IPv4
// TCP/UDP without options, and detail::parse_general() for the rest.
ParseResult parse(const uint8_t* data, size_t len, Parsed& out);
namespace detail {
// parse() without its shortcut: the same results for every input.
ParseResult parse_general(const uint8_t* data, size_t len, Parsed& out);
}  // namespace detail

// TCP flag bits.
inline constexpr uint8_t kTcpFin = 0x01, kTcpSyn = 0x02, kTcpRst = 0x04, kTcpAck = 0x10;

// A TCP SYN without ACK: a connection's first packet, whose flow is usually
// not in the flow table yet. No protocol test: parse() leaves tcp_flags 0
// for anything but TCP (a worker asks this of every packet, twice).
inline bool opens_connection(const Parsed& p) { return (p.tcp_flags & (kTcpSyn | kTcpAck)) == kTcpSyn; }

// --- Checksums --------------------------------------------------------------

// RFC 1624 eqn. 3: new checksum after a 16-bit field changes from old_v to new_v.
// All values in network byte order (as read from the packet with memcpy).
uint16_t csum_update16(uint16_t csum, uint16_t old_v, uint16_t new_v);
// Same for a 32-bit field (an IPv4 address).
uint16_t csum_update32(uint16_t csum, uint32_t old_v, uint32_t new_v);

// Full checksums, used by tests and by the software fallback. Both return the
// network-order value to store, and both treat the checksum field in the buffer
// as zero, so they run on a packet as it is (no need to clear the field first).
uint16_t ipv4_header_checksum(const uint8_t* ip_header, size_t ihl_bytes);
// TCP/UDP checksum over pseudo-header + segment; l4_len bytes from l4 (addresses
// network order). For UDP a computed 0 is returned as 0xffff (RFC 768: 0 = none).
uint16_t l4_checksum_ipv4(uint32_t src_ip, uint32_t dst_ip, uint8_t proto, const uint8_t* l4, size_t l4_len);
// ICMP checksum over the whole message (len bytes from its type byte).
uint16_t icmp_checksum(const uint8_t* icmp, size_t len);

// --- Rewrites ---------------------------------------------------------------
// Each rewrite changes the IPv4 address and L4 port in place and fixes the IPv4
// header checksum and the TCP/UDP checksum incrementally. A UDP checksum of
// zero ("none", RFC 768) stays zero. `p` must come from a successful parse of
// the same buffer; new values are in network byte order. ICMP packets get only
// the address rewrite (port arguments ignored). Inline (rewrite_inl.hpp).
void rewrite_dst(uint8_t* data, const Parsed& p, uint32_t new_ip, uint16_t new_port);
void rewrite_src(uint8_t* data, const Parsed& p, uint32_t new_ip, uint16_t new_port);
// Both at once (full NAT forward and reverse), one checksum pass.
void rewrite_src_dst(uint8_t* data, const Parsed& p, uint32_t new_src_ip, uint16_t new_src_port,
                     uint32_t new_dst_ip, uint16_t new_dst_port);

// --- ARP ---------------------------------------------------------------------

// An Ethernet/IPv4 ARP packet's fields (addresses network order), so the ARP
// code (answering for our VIPs, learning next hops) never reads raw offsets.
struct Arp {
    uint16_t op = 0;          // 1 request, 2 reply (host order)
    uint8_t sender_mac[6] = {};
    uint32_t sender_ip = 0;
    uint8_t target_mac[6] = {};
    uint32_t target_ip = 0;
};
inline constexpr uint16_t kArpRequest = 1, kArpReply = 2;

// Parses the ARP payload at data + l3_offset. False when short or not Ethernet/IPv4.
bool parse_arp(const uint8_t* data, size_t len, uint16_t l3_offset, Arp& out);
// Turns the request in place into the reply for `my_mac` (Ethernet addresses too).
void make_arp_reply(uint8_t* data, uint16_t l3_offset, const uint8_t my_mac[6]);
// Writes a broadcast who-has request for target_ip into buf (>= 42 bytes); returns its length.
size_t build_arp_request(uint8_t* buf, const uint8_t src_mac[6], uint32_t src_ip, uint32_t target_ip);

// --- ICMP echo ---------------------------------------------------------------

// Turns an ICMP echo request addressed to us into the reply in place: back to
// the sender's MAC from `my_mac` (not the request's destination MAC, which may
// be a broadcast or multicast one), IPs swapped, type 0 and TTL 64 (a new
// datagram), both checksums fixed incrementally. False if not an echo request
// (or `p` does not fit in len).
bool make_icmp_echo_reply(uint8_t* data, size_t len, const Parsed& p, const uint8_t my_mac[6]);

// --- ICMP errors ---------------------------------------------------------------

// The datagram an ICMP error (destination unreachable, time exceeded) quotes:
// a TCP or UDP packet's addresses and ports (network order) and where its
// headers sit in the frame, so the error can be matched to a flow and passed on
// (path MTU discovery needs "fragmentation needed" to reach the sender).
struct IcmpQuote {
    uint16_t ip_offset = 0;  // the quoted IPv4 header
    uint16_t l4_offset = 0;  // its first 8 L4 bytes (ports; UDP's checksum too)
    uint8_t proto = 0;
    uint32_t src_ip = 0, dst_ip = 0;
    uint16_t src_port = 0, dst_port = 0;
};
// False unless `p` is an ICMP error quoting a whole IPv4 header and 8 bytes of
// TCP or UDP inside the datagram (`p` from a successful parse of data[len)).
bool parse_icmp_error(const uint8_t* data, size_t len, const Parsed& p, IcmpQuote& q);
// Makes the error one about the same flow's packet on another leg: the outer
// destination becomes `to_ip` (and the outer source `from_ip`, unless 0), the
// quoted source `qsrc_ip:qsrc_port`, the quoted destination `qdst_ip:qdst_port`.
// Fixes the outer and quoted IPv4 header checksums, the quoted TCP or UDP
// checksum when quoted (incrementally; a UDP zero stays zero) and the ICMP
// checksum.
void rewrite_icmp_error(uint8_t* data, const Parsed& p, const IcmpQuote& q, uint32_t from_ip, uint32_t to_ip,
                        uint32_t qsrc_ip, uint16_t qsrc_port, uint32_t qdst_ip, uint16_t qdst_port);

}  // namespace ferry::packet

#include "packet/packet_inl.hpp"
#include "packet/rewrite_inl.hpp"
