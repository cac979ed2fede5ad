// Internals shared by the two backends (not part of the public interface): generational slot
// tables for connections and watches, and socket set-up (socket, options, bind).
#pragma once

#include <cstdint>
#include <deque>
#include <vector>

#include "loop/loop.hpp"

namespace mxp::loop::detail {

// Ids pack a slot index (24 bits) and its generation (32 bits): 56 bits, leaving the top byte of
// an io_uring user_data for the operation code.
inline constexpr uint32_t kIndexBits = 24;
inline constexpr uint32_t kMaxSlots = 1u << kIndexBits;
inline constexpr uint64_t kIdMask = (uint64_t{1} << 56) - 1;

inline uint64_t pack_id(uint32_t index, uint32_t gen) {
  return (uint64_t{gen} << kIndexBits) | index;
}
inline uint32_t id_index(uint64_t value) {
  return value & (kMaxSlots - 1);
}
inline uint32_t id_gen(uint64_t value) {
  return static_cast<uint32_t>(value >> kIndexBits);
}

// Slots with stable addresses (a deque: libuv handles must not move) and a free list. A released
// slot's generation changes, so ids issued for the previous use no longer resolve.
template <class T>
class SlotTable {
 public:
  struct Entry {
    T value{};
    uint32_t gen = 1;
    bool used = false;
  };

  // Returns the index of a free slot (its value as the previous user left it), or -1 when full.
  int64_t acquire() {
    uint32_t index;
    if (!free_.empty()) {
      index = free_.back();
      free_.pop_back();
    } else {
      if (entries_.size() >= kMaxSlots) return -1;
      index = static_cast<uint32_t>(entries_.size());
      entries_.emplace_back();
    }
    entries_[index].used = true;
    ++used_;
    return index;
  }
  void release(uint32_t index) {
    Entry& e = entries_[index];
    e.used = false;
    if (++e.gen == 0) e.gen = 1;
    --used_;
    free_.push_back(index);
  }
  T* find(uint64_t id_value) {
    const uint32_t index = id_index(id_value);
    if (index >= entries_.size()) return nullptr;
    Entry& e = entries_[index];
    return e.used && e.gen == id_gen(id_value) ? &e.value : nullptr;
  }
  const T* find(uint64_t id_value) const { return const_cast<SlotTable*>(this)->find(id_value); }
  T& at(uint32_t index) { return entries_[index].value; }
  bool used(uint32_t index) const { return entries_[index].used; }
  uint64_t id_of(uint32_t index) const { return pack_id(index, entries_[index].gen); }
  size_t capacity() const { return entries_.size(); }
  size_t used_count() const { return used_; }

 private:
  std::deque<Entry> entries_;
  std::vector<uint32_t> free_;
  size_t used_ = 0;
};

// socket() + TCP_NODELAY + (when options.source is set) IP_BIND_ADDRESS_NO_PORT and bind().
// IP_BIND_ADDRESS_NO_PORT defers the source port choice to connect(), so thousands of
// connections from one source address to different peers do not exhaust ephemeral ports.
// Returns the fd, or -errno.
int open_tcp_socket(const ConnectOptions& options, bool nonblocking);

// SO_LINGER {1, 0}: the following close() sends RST and drops unsent data.
void set_linger_zero(int fd);

}  // namespace mxp::loop::detail
