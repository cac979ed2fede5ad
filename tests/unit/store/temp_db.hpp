// A temporary directory holding a test database, removed (with its -wal/-shm files) afterwards.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>

namespace mxp::store::test {

class TempDb {
 public:
  TempDb() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "mxp-store-XXXXXX").string();
    dir_ = mkdtemp(tmpl.data()) ? tmpl : std::string();
  }
  ~TempDb() {
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
  TempDb(const TempDb&) = delete;
  TempDb& operator=(const TempDb&) = delete;
  std::string path() const { return dir_ + "/jobs.db"; }
  bool ok() const { return !dir_.empty(); }

 private:
  std::string dir_;
};

}  // namespace mxp::store::test
