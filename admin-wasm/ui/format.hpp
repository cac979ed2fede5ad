// Numbers for humans: counts with thousands separators or k/M, rates and durations with units.
// Plain functions (no ImGui), unit-tested natively with the model.
#pragma once

#include <cstdint>
#include <string>

namespace mxc {

std::string fmt_count(uint64_t n);         // 1,234,567
std::string fmt_short(double n);           // 950, 12.3k, 4.56M
std::string fmt_rate(double per_s);        // 0, 0.25/s, 12.5/s, 1.2k/s
std::string fmt_ms(double ms);             // 0.42 ms, 12.3 ms, 1.25 s
std::string fmt_duration(double seconds);  // 45 s, 3 min 20 s, 2 h 05 min
std::string fmt_percent(double fraction);  // 82.4 %
std::string fmt_limit(double rate_per_s);  // "unlimited" for 0, else fmt_rate
std::string fmt_bytes(uint64_t bytes);     // 512 B, 4.2 KiB, 1.3 MiB

}  // namespace mxc
