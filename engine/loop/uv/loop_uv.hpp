// The libuv backend of mxp::loop::Loop: uv_tcp_t connections reading into one shared buffer,
// uv_poll_t for foreign fds, one uv_timer_t waking the loop for the shared timer heap.
#pragma once

#include <memory>
#include <string>

#include "loop/loop.hpp"

namespace mxp::loop {

std::unique_ptr<Loop> create_uv_loop(const LoopOptions& options, std::string& why);

}  // namespace mxp::loop
