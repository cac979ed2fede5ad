// InputFile: plain and gzip input read the same way; a damaged gzip stream is an error, never a
// silently short input; consumed() tracks the bytes on disk for progress.
#include "app/io.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdio>
#include <random>
#include <string>
#include <thread>

namespace mxp::app {
namespace {

// A temporary file removed at the end of the test.
class TempFile {
 public:
  explicit TempFile(std::string_view contents) {
    path_ = testing::TempDir() + "/io_test_XXXXXX";
    int fd = mkstemp(path_.data());
    EXPECT_GE(fd, 0);
    EXPECT_EQ(::write(fd, contents.data(), contents.size()), static_cast<ssize_t>(contents.size()));
    ::close(fd);
  }
  ~TempFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// gzip data made by zlib's own gzip writer (gzwrite), as a gzip(1) file would be.
std::string gzip(std::string_view data, int level = 6) {
  std::string path = testing::TempDir() + "/io_test_gz_XXXXXX";
  int fd = mkstemp(path.data());
  EXPECT_GE(fd, 0);
  gzFile gz = gzdopen(fd, ("wb" + std::to_string(level)).c_str());
  EXPECT_NE(gz, nullptr);
  // gzwrite takes an unsigned length: write in pieces.
  for (size_t i = 0; i < data.size(); i += 1 << 20) {
    auto n = static_cast<unsigned>(std::min<size_t>(1 << 20, data.size() - i));
    EXPECT_EQ(gzwrite(gz, data.data() + i, n), static_cast<int>(n));
  }
  EXPECT_EQ(gzclose(gz), Z_OK);
  std::string out;
  std::FILE* f = std::fopen(path.c_str(), "rb");
  char buf[65536];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;)
    out.append(buf, n);
  std::fclose(f);
  std::remove(path.c_str());
  return out;
}

// Text that compresses but not to nothing: many lines with pseudo-random parts.
std::string sample(size_t bytes, unsigned seed = 1) {
  std::mt19937 rng(seed);
  std::string s;
  while (s.size() < bytes)
    s += "user" + std::to_string(rng() % 100000) + "@host" + std::to_string(rng() % 977) +
         ".example\n";
  s.resize(bytes);
  return s;
}

struct ReadResult {
  std::string data;
  std::string err;
  bool ok = false;
  uint64_t consumed = 0, size = 0;
  bool gzip = false;
};

// Reads the whole input in reads of `cap` bytes, checking consumed() never goes backwards.
ReadResult read_all(const std::string& path, size_t cap = 64 * 1024) {
  ReadResult r;
  InputFile in;
  if (auto opened = in.open(path); !opened) {
    r.err = opened.error();
    return r;
  }
  std::string buf(cap, '\0');
  uint64_t last = 0;
  for (;;) {
    auto n = in.read(buf.data(), cap);
    EXPECT_GE(in.consumed(), last);
    last = in.consumed();
    if (!n) {
      r.err = n.error();
      break;
    }
    if (*n == 0) {
      r.ok = true;
      // The end is the end: reading again gives 0 again.
      auto again = in.read(buf.data(), cap);
      EXPECT_TRUE(again.ok() && *again == 0);
      break;
    }
    EXPECT_LE(*n, cap);
    r.data.append(buf.data(), *n);
  }
  r.consumed = in.consumed();
  r.size = in.size();
  r.gzip = in.gzip();
  return r;
}

TEST(InputFile, PlainFileConsumedIsBytesReturned) {
  std::string data = sample(700 * 1024);
  TempFile f(data);
  for (size_t cap : {size_t{1}, size_t{3}, size_t{4096}, size_t{256 * 1024}}) {
    auto r = read_all(f.path(), cap);
    ASSERT_TRUE(r.ok) << r.err;
    EXPECT_FALSE(r.gzip);
    EXPECT_EQ(r.data, data);
    EXPECT_EQ(r.size, data.size());
    EXPECT_EQ(r.consumed, data.size());
  }
}

TEST(InputFile, TinyAndEmptyPlainFiles) {
  for (std::string data : {std::string(), std::string("\x1f"), std::string("\x1f\x8a"),
                           std::string("a"), std::string("\x1f\x8bx", 1)}) {
    TempFile f(data);
    auto r = read_all(f.path(), 1);
    ASSERT_TRUE(r.ok) << r.err;
    EXPECT_FALSE(r.gzip);
    EXPECT_EQ(r.data, data);
    EXPECT_EQ(r.consumed, data.size());
  }
}

TEST(InputFile, GzipRoundTripWhateverTheName) {
  std::string data = sample(3 * 1024 * 1024 + 17);  // several 256 KiB compressed reads
  std::string gz = gzip(data);
  ASSERT_GT(gz.size(), 256u * 1024);  // more than one compressed buffer
  TempFile f(gz);                     // no .gz in the name
  for (size_t cap : {size_t{1000}, size_t{64 * 1024}, size_t{1 << 20}}) {
    auto r = read_all(f.path(), cap);
    ASSERT_TRUE(r.ok) << r.err;
    EXPECT_TRUE(r.gzip);
    EXPECT_EQ(r.data.size(), data.size());
    EXPECT_TRUE(r.data == data);
    EXPECT_EQ(r.size, gz.size());  // size() is the file on disk
    EXPECT_EQ(r.consumed, gz.size());
  }
}

TEST(InputFile, GzipConsumedTracksCompressedBytes) {
  std::string data = sample(2 * 1024 * 1024, 7);
  std::string gz = gzip(data);
  TempFile f(gz);
  InputFile in;
  ASSERT_TRUE(in.open(f.path()).ok());
  std::string buf(64 * 1024, '\0');
  uint64_t out = 0;
  bool midway = false;
  std::string err;
  for (;;) {
    auto n = in.read(buf.data(), buf.size());
    if (!n) err = n.error();
    if (!n || *n == 0) break;
    out += *n;
    EXPECT_LE(in.consumed(), in.size());
    // Partway through, progress is partway too (neither 0 nor done).
    if (out > data.size() / 3 && out < data.size() / 2 && in.consumed() > 0 &&
        in.consumed() < in.size())
      midway = true;
  }
  EXPECT_TRUE(err.empty()) << err;
  EXPECT_TRUE(midway);
  EXPECT_EQ(out, data.size());
  EXPECT_EQ(in.consumed(), in.size());
}

TEST(InputFile, ConcatenatedMembersAndZeroPadding) {
  std::string a = sample(100000, 2), b = sample(300000, 3), c = "tail\n";
  std::string gz = gzip(a) + gzip(b, 1) + gzip(c, 9);
  {
    TempFile f(gz);
    for (size_t cap : {size_t{7}, size_t{64 * 1024}}) {
      auto r = read_all(f.path(), cap);
      ASSERT_TRUE(r.ok) << r.err;
      EXPECT_TRUE(r.data == a + b + c);
      EXPECT_EQ(r.consumed, gz.size());
    }
  }
  {
    TempFile f(gz + std::string(1000, '\0'));  // zero padding, as gzip(1) ignores
    auto r = read_all(f.path());
    ASSERT_TRUE(r.ok) << r.err;
    EXPECT_TRUE(r.data == a + b + c);
    EXPECT_EQ(r.consumed, gz.size() + 1000);
  }
  {
    TempFile f(gzip("") + gzip("x\n"));  // an empty member is fine
    auto r = read_all(f.path());
    ASSERT_TRUE(r.ok) << r.err;
    EXPECT_EQ(r.data, "x\n");
  }
}

TEST(InputFile, TruncatedGzipIsAnError) {
  std::string data = sample(500000, 4);
  std::string gz = gzip(data);
  // Cut in the header, the deflate data, the 8-byte trailer, and right after the magic.
  for (size_t keep : {size_t{2}, size_t{5}, gz.size() / 2, gz.size() - 8, gz.size() - 1}) {
    TempFile f(gz.substr(0, keep));
    auto r = read_all(f.path());
    EXPECT_FALSE(r.ok) << "keep " << keep;
    EXPECT_EQ(r.err.rfind("gzip: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find("truncated"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("at byte offset " + std::to_string(keep)), std::string::npos) << r.err;
    EXPECT_LE(r.data.size(), data.size());
    EXPECT_EQ(r.data, data.substr(0, r.data.size()));  // what came out is right
  }
}

TEST(InputFile, CorruptGzipIsAnErrorAndStaysOne) {
  std::string data = sample(500000, 5);
  std::string gz = gzip(data);
  struct Case {
    std::string bytes;
    std::string what;
  };
  std::string flipped = gz;
  flipped[gz.size() / 2] ^= 0x55;  // the deflate data (or the CRC catches it)
  std::string bad_crc = gz;
  bad_crc[gz.size() - 6] ^= 1;
  std::string bad_len = gz;
  bad_len[gz.size() - 2] ^= 1;
  for (const Case& c :
       {Case{flipped, ""}, Case{bad_crc, "incorrect data check"},
        Case{bad_len, "incorrect length check"}, Case{gz + "garbage", "incorrect header check"}}) {
    TempFile f(c.bytes);
    InputFile in;
    ASSERT_TRUE(in.open(f.path()).ok());
    std::string buf(64 * 1024, '\0');
    core::Expected<size_t, std::string> n = size_t{0};
    do
      n = in.read(buf.data(), buf.size());
    while (n && *n > 0);
    ASSERT_FALSE(n.ok());
    const std::string& err = n.error();
    EXPECT_EQ(err.rfind("gzip: ", 0), 0u) << err;
    EXPECT_NE(err.find(c.what), std::string::npos) << err;
    EXPECT_NE(err.find("at byte offset "), std::string::npos) << err;
    auto again = in.read(buf.data(), buf.size());
    ASSERT_FALSE(again.ok());  // no resuming past damage
    EXPECT_EQ(again.error(), err);
  }
}

TEST(InputFile, GzipThroughAPipeInDribbles) {
  std::string data = sample(400000, 6);
  std::string gz = gzip(data);
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  std::thread writer([&] {
    // One byte, then the next: the magic arrives split; then odd-sized pieces.
    size_t pos = 0;
    for (size_t step : {size_t{1}, size_t{1}, size_t{3}}) {
      EXPECT_EQ(::write(p[1], gz.data() + pos, step), static_cast<ssize_t>(step));
      pos += step;
      std::this_thread::yield();
    }
    while (pos < gz.size()) {
      size_t n = std::min<size_t>(12345, gz.size() - pos);
      ssize_t w = ::write(p[1], gz.data() + pos, n);
      ASSERT_GT(w, 0);
      pos += static_cast<size_t>(w);
    }
    ::close(p[1]);
  });
  auto r = read_all("/dev/fd/" + std::to_string(p[0]));
  writer.join();
  ::close(p[0]);
  ASSERT_TRUE(r.ok) << r.err;
  EXPECT_TRUE(r.gzip);
  EXPECT_EQ(r.size, 0u);  // unknown for a pipe
  EXPECT_EQ(r.consumed, gz.size());
  EXPECT_TRUE(r.data == data);
}

}  // namespace
}  // namespace mxp::app
