// Address types shared by config, tables and the data path.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace ferry {

enum class IpFamily : uint8_t { v4 = 4, v6 = 6 };

// An IPv4 or IPv6 address in network byte order. IPv4 lives in the first four
// bytes and the rest stay zero, so two addresses compare with one memcmp and
// the same type serves IPv6 once the data path learns it.
struct IpAddr {
    std::array<uint8_t, 16> bytes{};
    IpFamily family = IpFamily::v4;

    static IpAddr v4(uint32_t host_order);
    // From an address already in network byte order (as in a packet header).
    static IpAddr v4_net(uint32_t net_order);
    static std::optional<IpAddr> parse(std::string_view text);

    bool is_v4() const { return family == IpFamily::v4; }
    uint32_t v4_host() const;  // only meaningful when is_v4()
    uint32_t v4_net() const;   // network byte order, as stored in packets
    std::string to_string() const;

    friend bool operator==(const IpAddr&, const IpAddr&) = default;
    friend auto operator<=>(const IpAddr&, const IpAddr&) = default;
};

// An address with a prefix length, as written on a port ("10.0.0.1/24").
struct IpPrefix {
    IpAddr addr;
    uint8_t length = 0;

    static std::optional<IpPrefix> parse(std::string_view text);
    bool contains(const IpAddr& other) const;
    std::string to_string() const;

    friend bool operator==(const IpPrefix&, const IpPrefix&) = default;
};

// An address and an L4 port.
struct Endpoint {
    IpAddr addr;
    uint16_t port = 0;

    std::string to_string() const;  // "10.0.0.1:80" or "[::1]:80"
    friend bool operator==(const Endpoint&, const Endpoint&) = default;
    friend auto operator<=>(const Endpoint&, const Endpoint&) = default;
};

enum class L4Proto : uint8_t { tcp = 6, udp = 17 };
const char* to_string(L4Proto proto);

}  // namespace ferry
