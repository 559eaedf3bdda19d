// Minimal RFC 4180 CSV: quote a field when needed; split a line honouring quotes.
#pragma once

#include <string>
#include <vector>

namespace rguard {

std::string csv_field(const std::string& text);  // quoted only if it holds , " or a newline
std::vector<std::string> csv_split(const std::string& line);

}  // namespace rguard
