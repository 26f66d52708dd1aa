// Human-readable rendering of ferryd's JSON payloads for ferryctl.
//
// Nothing here knows a command: tables take their columns from the objects'
// keys (a preferred order first, then the rest alphabetically), so ferryd can
// add fields without touching ferryctl. Conventions on key names:
//   *_s  -> a duration in seconds, shown as "3m05s", header without the suffix
//   *_at -> a time; a number is taken as Unix seconds and shown as local time
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace ferry::ctl {

// Column header for a key: "active_flows" -> "ACTIVE FLOWS", "age_s" -> "AGE".
std::string header_of(std::string_view key);
// Field label for a key: "config_file" -> "Config file", "uptime_s" -> "Uptime".
std::string label_of(std::string_view key);
// One value as text, following the key conventions above; null -> "-".
std::string cell_text(std::string_view key, const nlohmann::json& value);
// 42 -> "42s", 185 -> "3m05s", 7500 -> "2h05m", 190000 -> "2d04h".
std::string format_duration(double seconds);
// Per-second rate: "0", "3.5", "1200".
std::string format_rate(double per_second);

// Columns of a table of objects: `preferred` keys present in any row, in that
// order, then every other key alphabetically.
std::vector<std::string> column_order(const nlohmann::json& rows, const std::vector<std::string>& preferred);
// Preferred columns of the lists ferryd sends, by the list's key ("vips", "flows", ...).
const std::vector<std::string>& preferred_columns(std::string_view list_key);

// An aligned table, one row per element of `rows` (objects; scalars make a
// one-column list). Numeric columns are right-aligned. Ends with a newline;
// an empty array gives "(none)\n".
std::string render_table(const nlohmann::json& rows, const std::vector<std::string>& preferred = {});

// A name/value table of an object such as {"rx_packets": 12, ...}, sorted by
// name. With `previous` (the same object one sample earlier) and `elapsed_s`,
// adds a RATE/S column of per-second deltas.
std::string render_counters(const nlohmann::json& values, std::string_view name_header,
                            std::string_view value_header, const nlohmann::json* previous = nullptr,
                            double elapsed_s = 0);

// Any payload object: scalar members as aligned "Label:  value" lines
// (`preferred` first), then each list of objects as a titled table and each
// nested object as a titled section. Keys in `skip` are left out ("ok" always).
std::string render_object(const nlohmann::json& obj, const std::vector<std::string>& preferred = {},
                          const std::vector<std::string>& skip = {});

}  // namespace ferry::ctl
