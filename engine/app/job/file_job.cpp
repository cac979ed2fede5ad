#include "app/job/file_job.hpp"

namespace mxp::app {

bool FileJob::resume(JobId job, const nlohmann::json& options) {
  std::string header = options.value("header", std::string());
  std::string d = options.value("delimiter", std::string(","));
  const auto delim = static_cast<unsigned char>(d.empty() ? ',' : d[0]);
  if (!header.empty()) sink.input_format(header, delim);
  auto max = journal_->max_line(job);
  if (!max) return fail_store("journal", max.error());
  source.resume(job, header, delim, *max);
  resumed(*max);
  return sink.rebuild(job, [this](const Result& r) { count_rebuilt(r); });
}

}  // namespace mxp::app
