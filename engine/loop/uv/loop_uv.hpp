// The libuv backend of mxp::loop::Loop: uv_tcp_t connections reading into one shared buffer,
// uv_poll_t for foreign fds, one uv_timer_t waking the loop for the shared timer heap.
#pragma once

#include <memory>
#include <string>

#include "core/expected.hpp"
#include "loop/loop.hpp"

namespace mxp::loop {

// Fails, saying why, when libuv cannot start a loop.
core::Expected<std::unique_ptr<Loop>, std::string> create_uv_loop(const LoopOptions& options);

}  // namespace mxp::loop
