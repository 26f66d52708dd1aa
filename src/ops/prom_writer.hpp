// Builds a Prometheus text exposition page (format 0.0.4) for /metrics.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace ferry::ops {

// Collects samples and prints them as a valid exposition page: every family's
// samples together under one HELP and one TYPE line (whatever order samples
// are added in), checked metric and label names, escaped label values and
// help text, counters named *_total. Misuse (a bad name, a counter that is
// negative or redeclared as a gauge) throws std::invalid_argument: a bug to
// fix, never a page Prometheus rejects.
class PromWriter {
public:
    // Label name/value pairs, printed in the given order.
    using Labels = std::vector<std::pair<std::string, std::string>>;

    // A monotonically increasing count; "_total" is appended to `name` unless present.
    template <typename T, std::enable_if_t<std::is_arithmetic_v<T>, int> = 0>
    PromWriter& counter(std::string_view name, std::string_view help, T value, const Labels& labels = {}) {
        if constexpr (std::is_floating_point_v<T>) {
            if (value < 0) negative_counter(name);
        } else if constexpr (std::is_signed_v<T>) {
            if (value < 0) negative_counter(name);
        }
        return add(Type::counter, counter_name(name), help, format_value(value), labels);
    }

    // A value that goes up and down (active flows, weights, states as 0/1).
    template <typename T, std::enable_if_t<std::is_arithmetic_v<T>, int> = 0>
    PromWriter& gauge(std::string_view name, std::string_view help, T value, const Labels& labels = {}) {
        return add(Type::gauge, std::string(name), help, format_value(value), labels);
    }

    // Declares a family without samples (e.g. no VIP configured yet), so its
    // HELP/TYPE still appear. A counter name gets "_total" as for counter().
    PromWriter& declare_counter(std::string_view name, std::string_view help);
    PromWriter& declare_gauge(std::string_view name, std::string_view help);

    // The page: families in first-use order, ending with a newline.
    std::string str() const;
    bool empty() const { return families_.empty(); }

    // Exposition-format helpers, public for tests and other writers.
    static bool valid_metric_name(std::string_view name);
    static bool valid_label_name(std::string_view name);
    static std::string escape_label_value(std::string_view value);  // \ " newline
    static std::string escape_help(std::string_view help);          // \ newline
    static std::string format_value(double value);                  // NaN, +Inf, -Inf, shortest round trip
    static std::string format_value(float value) { return format_value(double(value)); }
    static std::string format_value(long double value) { return format_value(double(value)); }
    template <typename T, std::enable_if_t<std::is_integral_v<T>, int> = 0>
    static std::string format_value(T value) {
        if constexpr (std::is_same_v<T, bool>)
            return value ? "1" : "0";
        else
            return std::to_string(value);
    }

private:
    enum class Type { counter, gauge };
    // One metric family: its header and the sample lines printed under it.
    struct Family {
        std::string name;
        Type type;
        std::string help;
        std::string samples;
    };

    static std::string counter_name(std::string_view name);
    [[noreturn]] static void negative_counter(std::string_view name);
    Family& family(Type type, const std::string& name, std::string_view help);
    PromWriter& add(Type type, const std::string& name, std::string_view help, const std::string& value,
                    const Labels& labels);

    std::vector<Family> families_;
    std::unordered_map<std::string, std::size_t> index_;  // family name -> families_ slot
};

}  // namespace ferry::ops
