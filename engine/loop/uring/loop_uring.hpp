// The io_uring backend of mxp::loop::Loop (liburing): batched submission, multishot receive into
// a provided buffer ring shared by every connection, poll+recv where the kernel lacks those.
#pragma once

#include <memory>
#include <string>

#include "loop/loop.hpp"

namespace mxp::loop {

// Null, with the reason in why, when this kernel/sandbox cannot run the backend.
std::unique_ptr<Loop> create_uring_loop(const LoopOptions& options, std::string& why);

}  // namespace mxp::loop
