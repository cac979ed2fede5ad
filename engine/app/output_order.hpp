// The output's order (sans-I/O): records finish in any order, the output file gets them in the
// order their lines were read, through a bounded window. docs/jobs.md, "Output order".
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>

namespace mxp::app {

class OutputOrder {
 public:
  // At most this many finished records (and this many bytes of them) wait for an earlier line;
  // past either, the oldest unanswered line is given up on (its record is written when it
  // comes, out of order) and what follows it goes out.
  static constexpr size_t kWindowRecords = 10'000;
  static constexpr size_t kWindowBytes = 32u << 20;

  // `input`: keep the input's order; false: write every record as it finishes.
  explicit OutputOrder(bool input = true, size_t max_records = kWindowRecords,
                       size_t max_bytes = kWindowBytes)
      : input_(input), max_records_(max_records), max_bytes_(max_bytes) {}

  // A line was read (in read order): its record is to come.
  void expect(uint64_t line) {
    if (!input_) return;
    if (expected_.try_emplace(line, Slot{}).second) order_.push_back(line);
  }

  // The record of `line` is final: appends to `out` what may now be written, in order.
  void push(uint64_t line, std::string text, std::string& out) {
    auto it = expected_.find(line);
    if (it == expected_.end()) {  // not waited for (--order completion, or given up on)
      out += text;
      return;
    }
    it->second.done = true;
    held_bytes_ += text.size();
    it->second.text = std::move(text);
    ++held_;
    release(out);
    while (held_ > max_records_ || held_bytes_ > max_bytes_) {
      // The head has no record (else release() took it): stop waiting for it.
      expected_.erase(order_.front());
      order_.pop_front();
      ++given_up_;
      release(out);
    }
  }

  // The end (or an interrupt, a cancel): everything held, in read order; lines with no record
  // are forgotten.
  void drain(std::string& out) {
    for (uint64_t line : order_) {
      auto it = expected_.find(line);
      if (it != expected_.end() && it->second.done) out += it->second.text;
    }
    order_.clear();
    expected_.clear();
    held_ = held_bytes_ = 0;
  }

  size_t held() const { return held_; }                   // records waiting for an earlier line
  size_t held_bytes() const { return held_bytes_; }       // their bytes
  size_t waiting_lines() const { return order_.size(); }  // lines read and not yet written
  uint64_t given_up() const { return given_up_; }         // lines whose record came out of order
  bool input_order() const { return input_; }

 private:
  struct Slot {
    bool done = false;
    std::string text;
  };
  void release(std::string& out) {
    while (!order_.empty()) {
      auto it = expected_.find(order_.front());
      if (it == expected_.end()) {  // cannot happen: order_ and expected_ go together
        order_.pop_front();
        continue;
      }
      if (!it->second.done) return;
      out += it->second.text;
      held_bytes_ -= it->second.text.size();
      --held_;
      expected_.erase(it);
      order_.pop_front();
    }
  }

  bool input_;
  size_t max_records_, max_bytes_;
  std::deque<uint64_t> order_;                   // lines read and not yet written, read order
  std::unordered_map<uint64_t, Slot> expected_;  // the same lines: answered or not
  size_t held_ = 0, held_bytes_ = 0;
  uint64_t given_up_ = 0;
};

}  // namespace mxp::app
