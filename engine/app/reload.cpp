#include "app/reload.hpp"

#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

namespace mxp::app {

PolicyReloader::PolicyReloader(Engine& e, pipeline::Verifier& v, std::FILE* diag)
    : e_(e), v_(v), diag_(diag) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGHUP);
  int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd < 0) return;
  if (e_.loop->watch_fd(fd, true, false, *this) != loop::Status::Ok) {
    close(fd);
    return;
  }
  sigprocmask(SIG_BLOCK, &set, nullptr);
  fd_ = fd;
}

PolicyReloader::~PolicyReloader() {
  if (fd_ < 0) return;
  e_.loop->unwatch_fd(fd_);
  close(fd_);
}

void PolicyReloader::on_fd_ready(int fd, bool, bool) {
  signalfd_siginfo info;
  bool hup = false;
  while (read(fd, &info, sizeof info) == static_cast<ssize_t>(sizeof info))
    hup = true;
  if (!hup) return;
  std::string err;
  auto policy = load_engine_policy(e_.options, err);
  if (!policy) {
    std::fprintf(diag_, "mxprobe: SIGHUP: %s; keeping the policy in force\n", err.c_str());
    return;
  }
  v_.set_policy(std::move(policy));
  std::fprintf(diag_, "mxprobe: SIGHUP: policy reloaded%s%s\n",
               e_.options.policy_file.empty() ? "" : " from ", e_.options.policy_file.c_str());
}

}  // namespace mxp::app
