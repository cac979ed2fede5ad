#include "core/json_in.hpp"

namespace mxp::json {

namespace {

// Counts depth and values; returning false stops nlohmann's (iterative) parser at once.
struct Counter {
  using J = nlohmann::json;
  const ParseLimits& limits;
  std::string& err;
  size_t depth = 0;
  size_t values = 0;

  bool value() {
    if (++values <= limits.max_values) return true;
    err = "more than " + std::to_string(limits.max_values) + " JSON values";
    return false;
  }
  bool open() {
    if (!value()) return false;
    if (++depth <= limits.max_depth) return true;
    err = "nested deeper than " + std::to_string(limits.max_depth) + " levels";
    return false;
  }
  bool close() {
    --depth;
    return true;
  }

  bool null() { return value(); }
  bool boolean(bool) { return value(); }
  bool number_integer(J::number_integer_t) { return value(); }
  bool number_unsigned(J::number_unsigned_t) { return value(); }
  bool number_float(J::number_float_t, const J::string_t&) { return value(); }
  bool string(J::string_t&) { return value(); }
  bool binary(J::binary_t&) { return value(); }
  bool start_object(std::size_t) { return open(); }
  bool key(J::string_t&) { return value(); }
  bool end_object() { return close(); }
  bool start_array(std::size_t) { return open(); }
  bool end_array() { return close(); }
  bool parse_error(std::size_t pos, const std::string&, const nlohmann::detail::exception&) {
    err = "not JSON (error at byte " + std::to_string(pos) + ")";
    return false;
  }
};

}  // namespace

core::Expected<void, std::string> check_json(std::string_view text, const ParseLimits& limits) {
  if (text.size() > limits.max_bytes)
    return core::unexpected("JSON text larger than " + std::to_string(limits.max_bytes) + " bytes");
  std::string err;
  Counter c{limits, err};
  if (nlohmann::json::sax_parse(text, &c, nlohmann::json::input_format_t::json, true)) return {};
  return core::unexpected(err.empty() ? "not JSON" : std::move(err));
}

}  // namespace mxp::json
