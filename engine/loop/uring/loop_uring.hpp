// The io_uring backend of mxp::loop::Loop (liburing): batched submission, multishot receive into
// a provided buffer ring shared by every connection, poll+recv where the kernel lacks those.
#pragma once

#include <memory>
#include <string>

#include "core/expected.hpp"
#include "loop/loop.hpp"

namespace mxp::loop {

// Fails, saying why, when this kernel/sandbox cannot run the backend.
core::Expected<std::unique_ptr<Loop>, std::string> create_uring_loop(const LoopOptions& options);

}  // namespace mxp::loop
