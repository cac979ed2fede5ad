#include "app/cli_reference.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "core/strings.hpp"

namespace mxp::app {
namespace {

std::string escape_cell(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += '\\';
    out += c;
  }
  return out;
}

// The value an option takes, from its CLI11 type and checks: "auto\|uring\|uv", "SECONDS",
// "FILE", "N", "TEXT".
std::string value_of(const CLI::Option& o) {
  if (o.get_type_size() == 0) return "";
  std::string t = o.get_type_name();
  std::vector<std::string> parts;
  for (size_t pos = 0;;) {
    size_t colon = t.find(':', pos);
    parts.push_back(t.substr(pos, colon == std::string::npos ? colon : colon - pos));
    if (colon == std::string::npos) break;
    pos = colon + 1;
  }
  for (size_t i = 1; i < parts.size(); ++i) {
    const std::string& p = parts[i];
    if (!p.empty() && p.front() == '{' && p.back() == '}') {
      std::string v = p.substr(1, p.size() - 2);
      std::replace(v.begin(), v.end(), ',', '|');
      return v;
    }
    if (p == "FILE" || p == "DIR" || p == "PATH(existing)") return p == "DIR" ? "DIR" : "FILE";
    if (p == "seconds") return "SECONDS";
  }
  const std::string& base = parts[0];
  if (base == "INT" || base == "UINT") return "N";
  if (base == "FLOAT") return "NUMBER";
  return base;
}

// "[usage.md](usage.md#x), [jobs.md](jobs.md)" (links within docs/) as a terminal shows them:
// "docs/usage.md#x, docs/jobs.md".
std::string docs_paths(const std::string& links) {
  std::string out;
  for (std::size_t i = 0; i < links.size();) {
    const std::size_t open = links.find("](", i), close = links.find(')', open);
    const std::size_t bracket = links.rfind('[', open);
    if (open == std::string::npos || close == std::string::npos || bracket == std::string::npos ||
        bracket < i) {
      out += links.substr(i);
      break;
    }
    out += links.substr(i, bracket - i) + "docs/" + links.substr(open + 2, close - open - 2);
    i = close + 1;
  }
  return out;
}

const CLI::App* find_command(const CLI::App& app, const std::string& name) {
  auto found = app.get_subcommands([&](const CLI::App* c) { return c->get_name() == name; });
  return found.empty() ? nullptr : found.front();
}

// CLI11 2.3 prints a description on one line however long; this one wraps it under its column.
class WrappingFormatter : public CLI::Formatter {
 public:
  explicit WrappingFormatter(std::size_t width) : width_(width) {}

  std::string make_option_desc(const CLI::Option* opt) const override {
    return wrap_text(CLI::Formatter::make_option_desc(opt), desc_width());
  }
  std::string make_subcommand(const CLI::App* sub) const override {
    std::stringstream out;
    CLI::detail::format_help(out, sub->get_display_name(true),
                             wrap_text(sub->get_description(), desc_width()), column_width_);
    return out.str();
  }
  std::string make_description(const CLI::App* app) const override {
    return wrap_text(CLI::Formatter::make_description(app), width_);
  }
  std::string make_footer(const CLI::App* app) const override {
    return wrap_text(CLI::Formatter::make_footer(app), width_);
  }

 private:
  // Descriptions start at column_width_; a narrow terminal still gets 30 columns of them.
  std::size_t desc_width() const {
    return width_ >= column_width_ + 30 ? width_ - column_width_ : 30;
  }
  std::size_t width_;
};

}  // namespace

std::string wrap_text(std::string_view text, std::size_t width, std::size_t indent) {
  const std::size_t avail = width > indent ? width - indent : 1;
  const std::string pad = "\n" + std::string(indent, ' ');
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  for (std::size_t start = 0;;) {  // one paragraph (a line of `text`) at a time
    const std::size_t nl = text.find('\n', start);
    const std::string_view para =
        text.substr(start, nl == std::string_view::npos ? nl : nl - start);
    // Leading spaces are kept (an indented line stays indented); runs of spaces between words
    // become one.
    std::size_t i = para.find_first_not_of(' ');
    if (i == std::string_view::npos) i = para.size();
    if (i < para.size()) out.append(para.substr(0, i));
    std::size_t line = i;    // columns used on the current output line (after the indent)
    bool line_empty = true;  // no word on it yet
    while (i < para.size()) {
      const std::size_t sp = std::min(para.find(' ', i), para.size());
      const std::string_view word = para.substr(i, sp - i);
      i = std::min(para.find_first_not_of(' ', sp), para.size());
      if (!line_empty && line + 1 + word.size() > avail) {
        out += pad;
        line = 0;
      } else if (!line_empty) {
        out += ' ';
        ++line;
      }
      out += word;
      line += word.size();
      line_empty = false;
    }
    if (nl == std::string_view::npos) break;
    out += '\n';
    start = nl + 1;
  }
  return out;
}

std::shared_ptr<CLI::Formatter> wrapping_formatter(std::size_t width) {
  return std::make_shared<WrappingFormatter>(width);
}

std::size_t help_width(int fd) {
  winsize ws{};
  if (isatty(fd) && ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
    return std::clamp<std::size_t>(ws.ws_col, 60, 120);
  return 80;
}

std::string command_reference_text(const CLI::App& cmd, const CommandDoc& doc, std::size_t width) {
  std::string out = wrapping_formatter(width)->make_help(&cmd, "mxprobe " + cmd.get_name(),
                                                         CLI::AppFormatMode::Normal);
  while (!out.empty() && out.back() == '\n')
    out.pop_back();
  out += "\n\nExit status:\n";
  for (const auto& [code, what] : doc.exit_codes) {
    char head[16];
    std::snprintf(head, sizeof head, "  %-5d", code);
    out += head + wrap_text(what, width, 7) + "\n";
  }
  if (!doc.examples.empty()) {
    out += "\nExamples:\n";
    for (const auto& e : doc.examples)
      out += "  " + e + "\n";
  }
  if (!doc.more.empty()) out += "\n" + wrap_text("More: " + docs_paths(doc.more), width) + "\n";
  return out;
}

std::string command_reference(const CLI::App& cmd, const CommandDoc& doc) {
  std::string out = "## mxprobe " + cmd.get_name() + "\n\n" + cmd.get_description() + ".";
  if (!doc.more.empty()) out += " More: " + doc.more + ".";
  out += "\n\n```\nmxprobe " + cmd.get_name() + " [OPTIONS]";
  for (const CLI::Option* o : cmd.get_options())
    if (o->get_positional()) {
      std::string n = core::upper(o->get_name(true));
      if (o->get_expected_max() > 1) n += "...";
      out += " " + (o->get_required() ? n : "[" + n + "]");
    }
  out += "\n```\n\n| option | value | default | meaning |\n| --- | --- | --- | --- |\n";
  for (const CLI::Option* o : cmd.get_options()) {
    if (o->get_group().empty() || o->get_name() == "--help") continue;  // hidden; -h is everywhere
    std::string names = o->get_positional() ? o->get_name(true) : o->get_name(false, true);
    std::string value = value_of(*o);
    if (o->get_expected_max() > 1 && !o->get_positional()) value += " (repeatable)";
    std::string def = o->get_default_str();
    std::string meaning = o->get_description();
    if (o->get_required()) meaning += " (required)";
    out += "| `" + escape_cell(names) + "` | " +
           (value.empty() ? "" : "`" + escape_cell(value) + "`") + " | " +
           (def.empty() ? "" : "`" + escape_cell(def) + "`") + " | " + escape_cell(meaning) +
           " |\n";
  }
  out += "\nExit status:\n\n| code | meaning |\n| --- | --- |\n";
  for (const auto& [code, what] : doc.exit_codes)
    out += "| " + std::to_string(code) + " | " + escape_cell(what) + " |\n";
  if (!doc.examples.empty()) {
    out += "\nExamples:\n\n```\n";
    for (const auto& e : doc.examples)
      out += e + "\n";
    out += "```\n";
  }
  return out;
}

std::string cli_reference(const CLI::App& app, const std::vector<CommandDoc>& docs) {
  std::string out =
      "# mxprobe command reference\n\n"
      "Generated from the command-line definition (`mxprobe help --markdown`; the ctest "
      "`cli_reference_current` fails when this file differs from it). `mxprobe help COMMAND` "
      "prints one command's part. How to use them together: [usage.md](usage.md).\n\n"
      "| command | what it does |\n| --- | --- |\n";
  for (const auto& d : docs)
    if (const CLI::App* c = find_command(app, d.name))
      out += "| [`" + d.name + "`](#mxprobe-" + d.name + ") | " +
             escape_cell(c->get_description()) + " |\n";
  out +=
      "\nUsage errors (an unknown command or option, a value out of range, a malformed "
      "`--dns` address, a policy file that does not parse) exit with 2 in every command, "
      "before anything starts.\n";
  for (const auto& d : docs)
    if (const CLI::App* c = find_command(app, d.name)) out += "\n" + command_reference(*c, d);
  return out;
}

std::string closest_command(const std::string& typed, const std::vector<std::string>& names) {
  std::string best;
  size_t best_d = 3;
  for (const auto& n : names) {
    if (typed.size() >= 2 && n.rfind(typed, 0) == 0) return n;  // a prefix: "ver" -> verify
    // Levenshtein distance, small strings.
    std::vector<size_t> prev(n.size() + 1), cur(n.size() + 1);
    for (size_t j = 0; j <= n.size(); ++j)
      prev[j] = j;
    for (size_t i = 1; i <= typed.size(); ++i) {
      cur[0] = i;
      for (size_t j = 1; j <= n.size(); ++j)
        cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1,
                           prev[j - 1] + (core::lower(typed[i - 1]) == n[j - 1] ? 0u : 1u)});
      std::swap(prev, cur);
    }
    if (prev[n.size()] < best_d) {
      best_d = prev[n.size()];
      best = n;
    }
  }
  return best;
}

}  // namespace mxp::app
