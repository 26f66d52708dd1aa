#include "common/ip_address.hpp"

#include <arpa/inet.h>

namespace ferry {

IpAddr IpAddr::v4(uint32_t host_order) { return v4_net(htonl(host_order)); }

IpAddr IpAddr::v4_net(uint32_t net_order) {
    IpAddr a;
    std::memcpy(a.bytes.data(), &net_order, 4);
    a.family = IpFamily::v4;
    return a;
}

uint32_t IpAddr::v4_net() const {
    uint32_t v;
    std::memcpy(&v, bytes.data(), 4);
    return v;
}

uint32_t IpAddr::v4_host() const { return ntohl(v4_net()); }

std::optional<IpAddr> IpAddr::parse(std::string_view text) {
    std::string s(text);
    IpAddr a;
    if (inet_pton(AF_INET, s.c_str(), a.bytes.data()) == 1) {
        a.family = IpFamily::v4;
        return a;
    }
    if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) == 1) {
        a.family = IpFamily::v6;
        return a;
    }
    return std::nullopt;
}

std::string IpAddr::to_string() const {
    char buf[INET6_ADDRSTRLEN] = {};
    inet_ntop(is_v4() ? AF_INET : AF_INET6, bytes.data(), buf, sizeof(buf));
    return buf;
}

std::optional<IpPrefix> IpPrefix::parse(std::string_view text) {
    auto slash = text.find('/');
    if (slash == std::string_view::npos) return std::nullopt;
    auto addr = IpAddr::parse(text.substr(0, slash));
    if (!addr) return std::nullopt;
    auto len_text = text.substr(slash + 1);
    if (len_text.empty() || len_text.size() > 3) return std::nullopt;
    unsigned len = 0;
    for (char c : len_text) {
        if (c < '0' || c > '9') return std::nullopt;
        len = len * 10 + unsigned(c - '0');
    }
    if (len > (addr->is_v4() ? 32u : 128u)) return std::nullopt;
    return IpPrefix{*addr, uint8_t(len)};
}

bool IpPrefix::contains(const IpAddr& other) const {
    if (other.family != addr.family) return false;
    unsigned full = length / 8, rest = length % 8;
    if (std::memcmp(addr.bytes.data(), other.bytes.data(), full) != 0) return false;
    if (rest == 0) return true;
    uint8_t mask = uint8_t(0xff << (8 - rest));
    return (addr.bytes[full] & mask) == (other.bytes[full] & mask);
}

// Built with append() rather than operator+: g++ 12 at -O3 reports a false
// -Wrestrict on chained string concatenation (GCC PR 105329).
std::string IpPrefix::to_string() const {
    std::string out = addr.to_string();
    out.append("/").append(std::to_string(length));
    return out;
}

std::string Endpoint::to_string() const {
    std::string out;
    if (addr.is_v4()) {
        out = addr.to_string();
    } else {
        out.append("[").append(addr.to_string()).append("]");
    }
    out.append(":").append(std::to_string(port));
    return out;
}

const char* to_string(L4Proto proto) { return proto == L4Proto::tcp ? "tcp" : "udp"; }

}  // namespace ferry
