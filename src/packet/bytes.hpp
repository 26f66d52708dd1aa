// Unaligned loads and stores on packet bytes. Private to the packet library
// (packet_inl.hpp includes it for the inline parse(); other code should not use it).
//
// Header fields sit at arbitrary offsets (a VLAN tag shifts IPv4 by 4 bytes, IP
// options shift L4), so every access goes through memcpy, which compiles to a
// plain load/store on x86 and arm64 and is never undefined behaviour.
#pragma once

#include <cstdint>
#include <cstring>

namespace ferry::packet::detail {

// Raw 16/32-bit field in network byte order, exactly as stored in the packet.
inline uint16_t load_raw16(const uint8_t* p) {
    uint16_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
inline uint32_t load_raw32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
inline void store_raw16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, sizeof v); }
inline void store_raw32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, sizeof v); }

// Big-endian 16-bit field converted to host order (for comparisons with constants).
inline uint16_t load_be16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
inline void store_be16(uint8_t* p, uint16_t v) {
    p[0] = static_cast<uint8_t>(v >> 8);
    p[1] = static_cast<uint8_t>(v);
}

}  // namespace ferry::packet::detail
