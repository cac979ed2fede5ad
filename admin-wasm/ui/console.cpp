// The console's panels (console.hpp): Overview, Domains and MX groups, Source IPs, Jobs, Check,
// Probe server, and the token login. Each is a function of the model and the UI state; widgets the
// browser test clicks are named with Marks.
//
// [SECTION] Theme and fonts
// [SECTION] Small widgets (chips, right-aligned numbers, cards, charts)
// [SECTION] Frame: top bar and sidebar
// [SECTION] Overview
// [SECTION] Domains and MX groups
// [SECTION] Source IPs
// [SECTION] Jobs
// [SECTION] Check
// [SECTION] Probe server
// [SECTION] Login
#include "console.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <vector>

#include "format.hpp"
#include "imgui.h"
#include "imgui_internal.h"

#if __has_include("console_fonts.inc")
#include "console_fonts.inc"  // generated at build time: subsets of DejaVu Sans and Sans Mono
#define MXC_HAVE_FONTS 1
#endif

namespace mxc {

const char* const kPanelNames[static_cast<int>(Panel::Count)] = {
    "overview", "domains", "sources", "jobs", "check", "probe", "cluster"};

void Marks::mark(const std::string& name) {
  const ImVec2 a = ImGui::GetItemRectMin(), b = ImGui::GetItemRectMax();
  rects[name] = {a.x, a.y, b.x - a.x, b.y - a.y};
}

namespace {

// ---------------------------------------------------------------------------------------------
// [SECTION] Theme and fonts
// ---------------------------------------------------------------------------------------------

ImVec4 rgb(int r, int g, int b, float a = 1.f) {
  return ImVec4(r / 255.f, g / 255.f, b / 255.f, a);
}

const ImVec4 kVerdictColor[kVerdictCount] = {rgb(72, 199, 116), rgb(239, 83, 80), rgb(245, 176, 65),
                                             rgb(144, 152, 164)};
const ImVec4 kText = rgb(222, 226, 232), kDim = rgb(138, 146, 158), kAccent = rgb(86, 156, 245);
const ImVec4 kGood = kVerdictColor[kDeliverable], kBad = kVerdictColor[kUndeliverable],
             kWarn = kVerdictColor[kRisky], kGrey = kVerdictColor[kUnknown];
const ImVec4 kPanelBg = rgb(24, 27, 33), kCardBg = rgb(31, 35, 43), kBorder = rgb(45, 50, 60);

ImU32 col(const ImVec4& c, float alpha = 1.f) {
  return ImGui::GetColorU32(ImVec4(c.x, c.y, c.z, c.w * alpha));
}

ImVec4 verdict_color(std::string_view v) {
  const int i = verdict_index(v);
  return i < 0 ? kGrey : kVerdictColor[i];
}

const Fonts* g_fonts = nullptr;
Marks* g_marks = nullptr;  // for widgets drawn deep down (the probe report's table)
struct FontScope {
  explicit FontScope(ImFont* f) : on(f != nullptr) {
    if (on) ImGui::PushFont(f);
  }
  ~FontScope() {
    if (on) ImGui::PopFont();
  }
  bool on;
};

// ---------------------------------------------------------------------------------------------
// [SECTION] Small widgets
// ---------------------------------------------------------------------------------------------

void text_colored(const ImVec4& c, const std::string& s) {
  ImGui::PushStyleColor(ImGuiCol_Text, c);
  ImGui::TextUnformatted(s.c_str());
  ImGui::PopStyleColor();
}
// Wrapped at the right edge of the cell or window: long SMTP replies stay readable.
void text_wrapped(const ImVec4& c, const std::string& s) {
  ImGui::PushStyleColor(ImGuiCol_Text, c);
  ImGui::PushTextWrapPos(0.0f);
  ImGui::TextUnformatted(s.c_str());
  ImGui::PopTextWrapPos();
  ImGui::PopStyleColor();
}
void text_dim(const std::string& s) {
  text_colored(kDim, s);
}

// Right-aligned in the current table cell (or the remaining width).
void text_right(const std::string& s, const ImVec4& c = kText) {
  const float w = ImGui::CalcTextSize(s.c_str()).x, avail = ImGui::GetContentRegionAvail().x;
  if (avail > w) ImGui::SetCursorPosX(ImGui::GetCursorPosX() + avail - w);
  text_colored(c, s);
}

// A small rounded label with a tinted background.
void chip(const std::string& s, const ImVec4& c) {
  const ImVec2 pad(7, 1), ts = ImGui::CalcTextSize(s.c_str());
  const ImVec2 p = ImGui::GetCursorScreenPos();
  const ImVec2 size(ts.x + 2 * pad.x, ts.y + 2 * pad.y);
  ImDrawList* dl = ImGui::GetWindowDrawList();
  dl->AddRectFilled(p, ImVec2(p.x + size.x, p.y + size.y), col(c, 0.18f), size.y * 0.5f);
  dl->AddText(ImVec2(p.x + pad.x, p.y + pad.y), col(c), s.c_str());
  ImGui::Dummy(size);
}

// A framed child region with a title, for grouping.
bool begin_card(const char* id, ImVec2 size, const char* title = nullptr) {
  ImGui::PushStyleColor(ImGuiCol_ChildBg, kCardBg);
  ImGui::PushStyleVar(ImGuiStyleVar_ChildRounding, 6.f);
  ImGui::PushStyleVar(ImGuiStyleVar_WindowPadding, ImVec2(12, 10));
  const bool open = ImGui::BeginChild(id, size, true, ImGuiWindowFlags_NoScrollbar);
  ImGui::PopStyleVar(2);
  ImGui::PopStyleColor();
  if (title) {
    text_dim(title);
  }
  return open;
}
void end_card() {
  ImGui::EndChild();
}

// A headline number: label, big value, a line under it.
void kpi(const char* id, float w, const char* label, const std::string& value,
         const std::string& sub, const ImVec4& accent) {
  const float h = 84;
  begin_card(id, ImVec2(w, h));
  ImDrawList* dl = ImGui::GetWindowDrawList();
  const ImVec2 p = ImGui::GetWindowPos();
  dl->AddRectFilled(ImVec2(p.x + 1, p.y + 8), ImVec2(p.x + 4, p.y + h - 8), col(accent), 2.f);
  text_dim(label);
  {
    FontScope f(g_fonts ? g_fonts->big : nullptr);
    ImGui::TextUnformatted(value.c_str());
  }
  text_dim(sub);
  end_card();
}

// The smallest "nice" step (1, 2, 2.5 or 5 x 10^k) with 4 steps covering v.
double nice_step(double v) {
  const double want = v > 0 ? v / 4 : 0.25;
  const double p = std::pow(10.0, std::floor(std::log10(want)));
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (m * p >= want) return m * p;
  return 10 * p;
}

std::string axis_label(double v) {
  if (v >= 1000) return fmt_short(v);
  char buf[32];
  std::snprintf(buf, sizeof buf, v == std::floor(v) ? "%.0f" : "%.2g", v);
  return buf;
}

struct Line {
  const std::vector<float>* v;
  ImVec4 color;
  const char* label;
};

// A time chart drawn with the draw list: grid with a labelled scale, one polyline per series
// (or stacked areas), legend at the top right. `seconds` is the span of the x axis.
void chart(const char* id, const char* title, const std::string& now_text,
           const std::vector<Line>& lines, ImVec2 size, bool stacked, double seconds) {
  begin_card(id, size);
  ImDrawList* dl = ImGui::GetWindowDrawList();
  text_dim(title);
  ImGui::SameLine();
  text_right(now_text);
  const ImVec2 wp = ImGui::GetWindowPos(), ws = ImGui::GetWindowSize();
  const float label_w = 44, top = ImGui::GetCursorScreenPos().y + 4;
  const ImVec2 a(wp.x + 12 + label_w, top), b(wp.x + ws.x - 14, wp.y + ws.y - 24);
  if (b.y - a.y < 20 || b.x - a.x < 40) return end_card();
  size_t n = 0;
  for (const auto& l : lines)
    n = std::max(n, l.v->size());
  // The scale: the highest point (or stacked sum), rounded up to 1, 2, 2.5 or 5 x 10^k.
  double top_value = 0;
  for (size_t i = 0; i < n; ++i) {
    double sum = 0;
    for (const auto& l : lines) {
      const size_t off = n - l.v->size();
      const double x = i >= off ? (*l.v)[i - off] : 0.0;
      if (stacked)
        sum += x;
      else
        top_value = std::max(top_value, x);
    }
    top_value = std::max(top_value, sum);
  }
  const double step = nice_step(top_value), scale = 4 * step;
  for (int g = 0; g <= 4; ++g) {
    const float y = b.y - (b.y - a.y) * float(g) / 4.f;
    dl->AddLine(ImVec2(a.x, y), ImVec2(b.x, y), col(kBorder), 1.f);
    const std::string t = axis_label(step * g);
    const ImVec2 ts = ImGui::CalcTextSize(t.c_str());
    dl->AddText(ImVec2(a.x - 8 - ts.x, y - ts.y * 0.5f), col(kDim), t.c_str());
  }
  char left[32];
  std::snprintf(left, sizeof left, "-%.0f s", seconds);
  dl->AddText(ImVec2(a.x, b.y + 4), col(kDim), left);
  const float now_w = ImGui::CalcTextSize("now").x;
  dl->AddText(ImVec2(b.x - now_w, b.y + 4), col(kDim), "now");
  if (n >= 2) {
    const float dx = (b.x - a.x) / float(n - 1);
    auto ypos = [&](double v) { return b.y - float(v / scale) * (b.y - a.y); };
    std::vector<double> base(n, 0.0);
    std::vector<ImVec2> pts(n);
    for (const auto& l : lines) {
      const size_t off = n - l.v->size();
      for (size_t i = 0; i < n; ++i) {
        const double x = i >= off ? (*l.v)[i - off] : 0.0;
        const double lo = stacked ? base[i] : 0.0;
        pts[i] = ImVec2(a.x + dx * float(i), ypos(lo + x));
        if (stacked && i > 0) {
          const ImVec2 p0(a.x + dx * float(i - 1), ypos(base[i - 1]));
          const ImVec2 p1(a.x + dx * float(i), ypos(lo));
          dl->AddQuadFilled(p0, pts[i - 1], pts[i], p1, col(l.color, 0.35f));
        }
      }
      if (stacked)
        for (size_t i = 0; i < n; ++i)
          base[i] += (i >= off ? (*l.v)[i - off] : 0.0);
      dl->AddPolyline(pts.data(), static_cast<int>(n), col(l.color), 0, 1.6f);
    }
  }
  // Legend (when several lines).
  if (lines.size() > 1) {
    float x = a.x + 8;
    for (const auto& l : lines) {
      dl->AddRectFilled(ImVec2(x, a.y + 4), ImVec2(x + 10, a.y + 14), col(l.color), 2.f);
      dl->AddText(ImVec2(x + 14, a.y + 1), col(kDim), l.label);
      x += 24 + ImGui::CalcTextSize(l.label).x;
    }
  }
  end_card();
}

std::string clock_text(int64_t time_ms) {
  if (time_ms <= 0) return "-";
  const std::time_t t = static_cast<std::time_t>(time_ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%H:%M:%S UTC", &tm);
  return buf;
}

bool filter_match(const char* filter, const std::string& s) {
  if (!*filter) return true;
  std::string f(filter), h(s);
  for (auto& c : f)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (auto& c : h)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return h.find(f) != std::string::npos;
}

// ---------------------------------------------------------------------------------------------
// [SECTION] Frame: top bar and sidebar
// ---------------------------------------------------------------------------------------------

void top_bar(const Model& m, const Connection& c, double now, float h) {
  ImDrawList* dl = ImGui::GetWindowDrawList();
  const ImVec2 p = ImGui::GetCursorScreenPos();
  const float w = ImGui::GetContentRegionAvail().x;
  dl->AddRectFilled(ImVec2(p.x - 8, p.y - 8), ImVec2(p.x + w + 8, p.y + h), col(kPanelBg));
  dl->AddLine(ImVec2(p.x - 8, p.y + h), ImVec2(p.x + w + 8, p.y + h), col(kBorder));
  ImGui::SetCursorScreenPos(ImVec2(p.x + 6, p.y + (h - 8 - ImGui::GetTextLineHeight()) * 0.5f));
  {
    FontScope f(g_fonts ? g_fonts->big : nullptr);
    ImGui::SetCursorScreenPos(ImVec2(p.x + 6, p.y + (h - 8 - ImGui::GetTextLineHeight()) * 0.5f));
    text_colored(kText, "mxprobe");
  }
  ImGui::SameLine();
  ImGui::SetCursorPosY(ImGui::GetCursorPosY() + 5);
  text_dim("operator console");
  // Connection indicator, at the right: a dot and words, with the age of the data.
  std::string label;
  ImVec4 color;
  const double age = m.have_snapshot ? now - m.last_snapshot_at : 1e9;
  switch (c.link) {
    case Link::Live:
      if (age > 2.0) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "stale: no data for %.0f s", age);
        label = buf;
        color = kWarn;
      } else {
        label = "live";
        color = kGood;
      }
      break;
    case Link::Connecting:
      label = "connecting...";
      color = kWarn;
      break;
    case Link::Reconnecting: {
      char buf[96];
      std::snprintf(buf, sizeof buf, "disconnected: retrying in %.0f s",
                    std::max(0.0, std::ceil(c.retry_at - now)));
      label = buf;
      color = kBad;
      break;
    }
    case Link::NeedToken:
      label = "token needed";
      color = kWarn;
  }
  std::string right = label;
  if (m.have_snapshot) right += "   " + clock_text(m.snap.time_ms);
  const float rw = ImGui::CalcTextSize(right.c_str()).x + 22;
  const float y = p.y + (h - 8 - ImGui::GetTextLineHeight()) * 0.5f;
  ImGui::SetCursorScreenPos(ImVec2(p.x + w - rw, y));
  const ImVec2 dot(p.x + w - rw + 5, y + ImGui::GetTextLineHeight() * 0.5f);
  // The dot pulses gently while live, so a frozen page is visible at a glance.
  const float pulse = c.link == Link::Live && age <= 2.0
                          ? 0.6f + 0.4f * float(std::fabs(std::sin(now * 2.0)))
                          : 1.f;
  dl->AddCircleFilled(dot, 5.f, col(color, pulse));
  ImGui::SetCursorScreenPos(ImVec2(p.x + w - rw + 16, y));
  text_colored(color, label);
  if (m.have_snapshot) {
    ImGui::SameLine();
    text_dim("   " + clock_text(m.snap.time_ms));
  }
  ImGui::SetCursorScreenPos(ImVec2(p.x, p.y + h + 8));
}

void sidebar(Model& m, UiState& ui, Marks& marks, float w) {
  ImGui::PushStyleColor(ImGuiCol_ChildBg, kPanelBg);
  ImGui::BeginChild("sidebar", ImVec2(w, 0), false);
  ImGui::Dummy(ImVec2(0, 4));
  const char* labels[] = {"Overview", "Domains & MX", "Source IPs", "Jobs",
                          "Check",    "Probe server", "Cluster"};
  std::string badges[static_cast<int>(Panel::Count)];
  const auto& s = m.snap;
  if (m.have_snapshot) {
    badges[0] = fmt_rate(s.rate());
    badges[1] = std::to_string(s.groups.size());
    // Sources out of rotation (start-up checks, dead proxy) count apart from those an MX group
    // blocked: the first need the operator, the second wait.
    size_t blocked = 0, down = 0;
    for (const auto& x : s.sources) {
      down += x.state == "down";
      blocked += x.state != "ok" && x.state != "down";
    }
    badges[2] = down      ? std::to_string(down) + " down"
                : blocked ? std::to_string(blocked) + " blocked"
                          : std::to_string(s.sources.size());
    size_t running = 0;
    for (const auto& j : s.jobs)
      running += j.state == "running";
    badges[3] = running ? std::to_string(running) + " running" : std::to_string(s.jobs.size());
  }
  badges[4] = m.checks.empty() ? "" : std::to_string(m.checks.size());
  badges[5] = m.probes.empty() ? "" : std::to_string(m.probes.size());
  if (s.cluster)
    badges[6] = s.cluster->redis_up ? std::to_string(s.cluster->nodes.size()) + " nodes"
                                    : std::string("Redis down");
  for (int i = 0; i < static_cast<int>(Panel::Count); ++i) {
    // A node without --cluster has no cluster to show.
    if (i == static_cast<int>(Panel::Cluster) && !s.cluster) continue;
    const bool sel = static_cast<int>(ui.panel) == i;
    ImGui::PushID(i);
    const ImVec2 p = ImGui::GetCursorScreenPos();
    ImGui::PushStyleColor(ImGuiCol_Header, rgb(44, 54, 72));
    ImGui::PushStyleColor(ImGuiCol_HeaderHovered, rgb(38, 44, 56));
    if (ImGui::Selectable("##nav", sel, 0, ImVec2(w, 34))) ui.panel = static_cast<Panel>(i);
    ImGui::PopStyleColor(2);
    marks.mark(std::string("nav.") + kPanelNames[i]);
    ImDrawList* dl = ImGui::GetWindowDrawList();
    const float ty = p.y + (34 - ImGui::GetTextLineHeight()) * 0.5f;
    if (sel) dl->AddRectFilled(ImVec2(p.x, p.y), ImVec2(p.x + 3, p.y + 34), col(kAccent));
    dl->AddText(ImVec2(p.x + 16, ty), col(sel ? kText : kDim), labels[i]);
    if (!badges[i].empty()) {
      const float bw = ImGui::CalcTextSize(badges[i].c_str()).x;
      dl->AddText(ImVec2(p.x + w - bw - 12, ty), col(kDim), badges[i].c_str());
    }
    ImGui::PopID();
  }
  ImGui::EndChild();
  ImGui::PopStyleColor();
}

// ---------------------------------------------------------------------------------------------
// [SECTION] Overview
// ---------------------------------------------------------------------------------------------

void overview(const Model& m) {
  const auto& s = m.snap;
  const float sp = ImGui::GetStyle().ItemSpacing.x, avail = ImGui::GetContentRegionAvail().x;
  const float kw = (avail - 5 * sp) / 6;
  const uint64_t total = s.total();
  kpi("k_total", kw, "Verified", fmt_count(total),
      fmt_rate(s.rate()) + " now, " + fmt_count(s.cache_hits) + " from cache", kAccent);
  static const char* const titles[] = {"Deliverable", "Undeliverable", "Risky", "Unknown"};
  for (int v = 0; v < kVerdictCount; ++v) {
    ImGui::SameLine();
    const std::string sub =
        (total ? fmt_percent(double(s.totals[v]) / double(total)) : std::string("-")) +
        "  \u00b7  " + fmt_rate(s.rates[v]);
    kpi(kVerdictNames[v], kw, titles[v], fmt_count(s.totals[v]), sub, kVerdictColor[v]);
  }
  ImGui::SameLine();
  kpi("k_sessions", kw, "SMTP sessions open", fmt_count(s.sessions),
      fmt_count(s.pending) + " pending, " + fmt_count(s.waiting) + " waiting", kAccent);

  // Verifications per second and the latency table.
  const float h1 = std::max(200.f, ImGui::GetContentRegionAvail().y * 0.42f);
  std::vector<Line> lines;
  for (int v = 0; v < kVerdictCount; ++v)
    lines.push_back({&s.series[v], kVerdictColor[v], kVerdictNames[v]});
  const float cw = (avail - sp) * 0.60f;
  chart("c_verdicts", "Verifications per second, by verdict", fmt_rate(s.rate()) + " (5 s mean)",
        lines, ImVec2(cw, h1), true, 60);
  ImGui::SameLine();
  begin_card("latency", ImVec2(avail - cw - sp, h1), "SMTP latency per stage (since start)");
  if (ImGui::BeginTable("lat", 5, ImGuiTableFlags_RowBg | ImGuiTableFlags_SizingStretchProp)) {
    ImGui::TableSetupColumn("stage", 0, 1.3f);
    for (const char* h : {"count", "p50", "p90", "p99"})
      ImGui::TableSetupColumn(h, 0, 1.f);
    ImGui::TableNextRow(ImGuiTableRowFlags_Headers);
    ImGui::TableNextColumn();
    text_dim("stage");
    for (const char* h : {"count", "p50", "p90", "p99"}) {
      ImGui::TableNextColumn();
      text_right(h, kDim);
    }
    for (const auto& l : s.latency) {
      ImGui::TableNextRow();
      ImGui::TableNextColumn();
      ImGui::TextUnformatted(l.stage.c_str());
      ImGui::TableNextColumn();
      text_right(fmt_count(l.count), kDim);
      for (double v : {l.p50_ms, l.p90_ms, l.p99_ms}) {
        ImGui::TableNextColumn();
        text_right(fmt_ms(v), v >= 1000 ? kWarn : kText);
      }
    }
    ImGui::EndTable();
  }
  if (s.latency.empty()) text_dim("no SMTP sessions yet");
  end_card();

  // Sessions, connects, DNS.
  const float h2 = std::max(140.f, ImGui::GetContentRegionAvail().y * 0.46f);
  const float w3 = (avail - 2 * sp) / 3;
  const double span = double(m.h_sessions.values().size()) / 4.0;
  chart("c_sessions", "Active SMTP sessions", fmt_count(s.sessions),
        {{&m.h_sessions.values(), kAccent, "sessions"}}, ImVec2(w3, h2), false,
        std::max(span, 1.0));
  ImGui::SameLine();
  chart("c_connects", "Connects per second", fmt_rate(s.connects_per_s),
        {{&m.h_connects.values(), rgb(160, 120, 240), "connects/s"}}, ImVec2(w3, h2), false,
        std::max(span, 1.0));
  ImGui::SameLine();
  chart("c_dns", "DNS queries per second",
        fmt_rate(s.dns_queries_per_s) + ", cache hits " + fmt_percent(s.dns_cache_hit_rate),
        {{&m.h_dns.values(), rgb(80, 200, 210), "queries/s"}}, ImVec2(w3, h2), false,
        std::max(span, 1.0));

  // Reasons and events.
  const float h3 = ImGui::GetContentRegionAvail().y;
  const float rw = (avail - sp) * 0.40f;
  begin_card("reasons", ImVec2(rw, h3), "Reasons (since start)");
  uint64_t top = s.reasons.empty() ? 1 : s.reasons.front().second;
  for (const auto& [name, n] : s.reasons) {
    const ImVec2 p = ImGui::GetCursorScreenPos();
    const float w = ImGui::GetContentRegionAvail().x;
    const float bar = (w - 210) * float(n) / float(std::max<uint64_t>(top, 1));
    ImGui::GetWindowDrawList()->AddRectFilled(ImVec2(p.x + 140, p.y + 3),
                                              ImVec2(p.x + 140 + std::max(bar, 2.f), p.y + 13),
                                              col(kAccent, 0.55f), 2.f);
    ImGui::TextUnformatted(name.c_str());
    ImGui::SameLine();
    text_right(fmt_count(n), kDim);
  }
  end_card();
  ImGui::SameLine();
  begin_card("events", ImVec2(avail - rw - sp, h3), "Events (newest first)");
  ImGui::BeginChild("events_list", ImVec2(0, 0), false);
  for (auto it = m.events.rbegin(); it != m.events.rend(); ++it) {
    ImVec4 c = kDim;
    if (it->kind == "backoff" || it->kind == "blocked") c = kWarn;
    if (it->kind == "recovered" || it->kind == "job_done") c = kGood;
    text_dim(clock_text(it->time_ms).substr(0, 8));
    ImGui::SameLine();
    text_colored(c, it->text);
  }
  if (m.events.empty()) text_dim("back-offs, recoveries, blocks and jobs appear here");
  ImGui::EndChild();
  end_card();
}

// ---------------------------------------------------------------------------------------------
// [SECTION] Domains and MX groups
// ---------------------------------------------------------------------------------------------

std::string bucket_text(double tokens, double burst) {
  if (tokens < 0 || burst < 0) return "-";
  if (burst == 0) return "unlimited";
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.0f / %.0f", tokens, burst);
  return buf;
}

ImVec4 reply_color(const std::string& r) {
  if (r.empty()) return kDim;
  if (r[0] == '2') return kGood;
  if (r[0] == '4') return kWarn;
  if (r[0] == '5') return kBad;
  return kDim;
}

void backoff_chip(const Group& g) {
  if (g.backing_off) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "backing off x%.2f", g.rate_factor);
    chip(buf, kWarn);
  } else if (g.parked) {
    chip("at its limit", kGrey);
  } else {
    chip("ok", kGood);
  }
}

void group_editor(Model& m, UiState& ui, Actions& act, Marks& marks, const Group& g) {
  if (ui.edit_for != g.name) {
    ui.edit_for = g.name;
    ui.edit_sessions = static_cast<int>(g.session_limit);
    ui.edit_connect_rate = static_cast<float>(g.connect_rate);
    ui.edit_rcpt_rate = static_cast<float>(g.rcpt_rate);
    ui.policy_status.clear();
  }
  text_dim("Change limits live (0 = unlimited)");
  ImGui::PushItemWidth(150);
  ImGui::InputInt("sessions", &ui.edit_sessions, 1, 10);
  marks.mark("policy.sessions");
  ImGui::InputFloat("connects/s", &ui.edit_connect_rate, 1.f, 10.f, "%.2f");
  marks.mark("policy.connect_rate");
  ImGui::InputFloat("RCPT/s", &ui.edit_rcpt_rate, 1.f, 10.f, "%.2f");
  marks.mark("policy.rcpt_rate");
  ImGui::PopItemWidth();
  ui.edit_sessions = std::max(ui.edit_sessions, 1);
  ui.edit_connect_rate = std::max(ui.edit_connect_rate, 0.f);
  ui.edit_rcpt_rate = std::max(ui.edit_rcpt_rate, 0.f);
  ImGui::PushStyleColor(ImGuiCol_Button, rgb(40, 90, 160));
  ImGui::PushStyleColor(ImGuiCol_ButtonHovered, rgb(52, 110, 190));
  const bool apply = ImGui::Button("Apply to group", ImVec2(150, 0));
  ImGui::PopStyleColor(2);
  marks.mark("policy.apply");
  if (apply) {
    act.send(m.cmd_set_group_policy(g.name, {{"per_mx.sessions", ui.edit_sessions},
                                             {"per_mx.connect_rate", ui.edit_connect_rate},
                                             {"per_mx.rcpt_rate", ui.edit_rcpt_rate}}));
    ui.policy_cmd_id = m.last_id();
    ui.policy_status = "sent...";
    ui.policy_status_ok = true;
  }
  if (m.last_ack && m.last_ack->id == ui.policy_cmd_id && ui.policy_cmd_id) {
    ui.policy_status = m.last_ack->ok ? "applied: the group uses the new limits now"
                                      : "refused: " + m.last_ack->error;
    ui.policy_status_ok = m.last_ack->ok;
  }
  if (!ui.policy_status.empty()) {
    ImGui::SameLine();
    text_colored(ui.policy_status_ok ? kGood : kBad, ui.policy_status);
  }
}

void domains_panel(Model& m, UiState& ui, Actions& act, Marks& marks) {
  const auto& s = m.snap;
  ImGui::SetNextItemWidth(280);
  ImGui::InputTextWithHint("##filter", "filter by MX group or domain", ui.filter, sizeof ui.filter);
  marks.mark("groups.filter");
  ImGui::SameLine();
  ImGui::Checkbox("backing off only", &ui.only_backing_off);
  ImGui::SameLine();
  text_dim("   the 20 busiest MX groups and domains, 4 times a second");

  // The groups, sorted as the operator asks (ImGui tables keep the sort specs).
  std::vector<const Group*> rows;
  for (const auto& g : s.groups) {
    bool match = filter_match(ui.filter, g.name);
    for (const auto& d : s.domains)
      match = match || (d.group == g.name && filter_match(ui.filter, d.name));
    if (match && (!ui.only_backing_off || g.backing_off)) rows.push_back(&g);
  }
  const float avail_h = ImGui::GetContentRegionAvail().y;
  const float rows_h = 40 + 27 * float(std::max<size_t>(rows.size(), 3));
  const float table_h = std::clamp(rows_h, 120.f, avail_h * 0.55f);
  const ImGuiTableFlags tf = ImGuiTableFlags_Sortable | ImGuiTableFlags_RowBg |
                             ImGuiTableFlags_ScrollY | ImGuiTableFlags_BordersInnerH |
                             ImGuiTableFlags_Resizable | ImGuiTableFlags_SizingFixedFit;
  enum Col { cName, cSess, cQueue, cBucket, cLimit, cRps, c2, c4, c5, cNone, cBack, cLast };
  if (ImGui::BeginTable("groups", 12, tf, ImVec2(0, table_h))) {
    ImGui::TableSetupScrollFreeze(1, 1);
    const ImGuiTableColumnFlags num =
        ImGuiTableColumnFlags_WidthFixed | ImGuiTableColumnFlags_PreferSortDescending;
    const ImGuiTableColumnFlags fixed = ImGuiTableColumnFlags_WidthFixed;
    ImGui::TableSetupColumn("MX group",
                            ImGuiTableColumnFlags_DefaultSort | ImGuiTableColumnFlags_WidthStretch,
                            1.f, cName);
    ImGui::TableSetupColumn("in flight", num, 0, cSess);
    ImGui::TableSetupColumn("queue", num, 0, cQueue);
    ImGui::TableSetupColumn("bucket", fixed | ImGuiTableColumnFlags_NoSort, 0, cBucket);
    ImGui::TableSetupColumn("limit conn / RCPT", fixed | ImGuiTableColumnFlags_NoSort, 0, cLimit);
    ImGui::TableSetupColumn("replies", num, 0, cRps);
    ImGui::TableSetupColumn("2xx", num, 0, c2);
    ImGui::TableSetupColumn("4xx", num, 0, c4);
    ImGui::TableSetupColumn("5xx", num, 0, c5);
    ImGui::TableSetupColumn("none", num, 0, cNone);
    ImGui::TableSetupColumn("back-off", num, 0, cBack);
    ImGui::TableSetupColumn("last reply",
                            ImGuiTableColumnFlags_NoSort | ImGuiTableColumnFlags_WidthStretch, 1.3f,
                            cLast);
    ImGui::TableHeadersRow();
    if (ImGuiTableSortSpecs* ss = ImGui::TableGetSortSpecs(); ss && ss->SpecsCount > 0) {
      const auto spec = ss->Specs[0];
      auto key = [&](const Group* g) -> double {
        switch (spec.ColumnUserID) {
          case cSess:
            return g->sessions;
          case cQueue:
            return double(g->ready);
          case cRps:
            return g->replies_per_s;
          case c2:
            return double(g->r2xx);
          case c4:
            return double(g->r4xx);
          case c5:
            return double(g->r5xx);
          case cNone:
            return double(g->rnone);
          case cBack:
            return (g->backing_off ? 1e6 : 0) + double(g->backoffs);
          default:
            return 0;
        }
      };
      const bool asc = spec.SortDirection == ImGuiSortDirection_Ascending;
      std::stable_sort(rows.begin(), rows.end(), [&](const Group* x, const Group* y) {
        if (spec.ColumnUserID == cName) return asc ? x->name < y->name : x->name > y->name;
        return asc ? key(x) < key(y) : key(x) > key(y);
      });
    }
    for (const Group* g : rows) {
      ImGui::TableNextRow(0, 26);
      ImGui::TableNextColumn();
      const bool sel = ui.selected_group == g->name;
      if (ImGui::Selectable(g->name.c_str(), sel, ImGuiSelectableFlags_SpanAllColumns))
        ui.selected_group = g->name;
      marks.mark("group.row." + g->name);
      ImGui::TableNextColumn();
      text_right(std::to_string(g->sessions) + " / " + std::to_string(g->session_limit));
      ImGui::TableNextColumn();
      text_right(fmt_count(g->ready));
      ImGui::TableNextColumn();
      text_right(bucket_text(g->connect_tokens, g->connect_burst), kDim);
      ImGui::TableNextColumn();
      text_right(g->connect_rate <= 0 && g->rcpt_rate <= 0
                     ? std::string("unlimited")
                     : fmt_limit(g->connect_rate) + " / " + fmt_limit(g->rcpt_rate),
                 kDim);
      ImGui::TableNextColumn();
      text_right(fmt_rate(g->replies_per_s));
      ImGui::TableNextColumn();
      text_right(fmt_count(g->r2xx), g->r2xx ? kGood : kDim);
      ImGui::TableNextColumn();
      text_right(fmt_count(g->r4xx), g->r4xx ? kWarn : kDim);
      ImGui::TableNextColumn();
      text_right(fmt_count(g->r5xx), g->r5xx ? kBad : kDim);
      ImGui::TableNextColumn();
      text_right(fmt_count(g->rnone), kDim);
      ImGui::TableNextColumn();
      backoff_chip(*g);
      ImGui::TableNextColumn();
      text_colored(reply_color(g->last_reply), g->last_reply.empty() ? "-" : g->last_reply);
    }
    ImGui::EndTable();
  }
  if (rows.empty()) text_dim(s.groups.empty() ? "no MX groups yet" : "nothing matches the filter");

  // Domains (left) and the selected group (right).
  const float sp = ImGui::GetStyle().ItemSpacing.x, avail = ImGui::GetContentRegionAvail().x;
  const float h = ImGui::GetContentRegionAvail().y;
  const float lw = (avail - sp) * 0.50f;
  begin_card("domains", ImVec2(lw, h), "Domains with the most work left");
  if (ImGui::BeginTable(
          "doms", 5,
          ImGuiTableFlags_RowBg | ImGuiTableFlags_ScrollY | ImGuiTableFlags_SizingStretchProp,
          ImVec2(0, 0))) {
    ImGui::TableSetupScrollFreeze(0, 1);
    ImGui::TableSetupColumn("domain", 0, 2.f);
    ImGui::TableSetupColumn("MX group", 0, 2.f);
    ImGui::TableSetupColumn("pending", 0, 0.8f);
    ImGui::TableSetupColumn("sessions", 0, 0.8f);
    ImGui::TableSetupColumn("catch-all", 0, 0.8f);
    ImGui::TableHeadersRow();
    for (const auto& d : s.domains) {
      if (!filter_match(ui.filter, d.name) && !filter_match(ui.filter, d.group)) continue;
      ImGui::TableNextRow();
      ImGui::TableNextColumn();
      if (ImGui::Selectable(d.name.c_str(), ui.selected_group == d.group,
                            ImGuiSelectableFlags_SpanAllColumns))
        ui.selected_group = d.group;
      ImGui::TableNextColumn();
      text_dim(d.group.empty() ? "(DNS pending)" : d.group);
      ImGui::TableNextColumn();
      text_right(fmt_count(d.pending));
      ImGui::TableNextColumn();
      text_right(std::to_string(d.sessions));
      ImGui::TableNextColumn();
      if (!d.catch_all)
        text_dim("?");
      else
        text_colored(*d.catch_all ? kWarn : kDim, *d.catch_all ? "yes" : "no");
    }
    ImGui::EndTable();
  }
  end_card();
  ImGui::SameLine();
  begin_card("detail", ImVec2(avail - lw - sp, h));
  const Group* g = nullptr;
  for (const auto& x : s.groups)
    if (x.name == ui.selected_group) g = &x;
  if (!g) {
    text_dim("Select an MX group (or a domain) to see its state and change its limits.");
  } else {
    {
      FontScope f(g_fonts ? g_fonts->big : nullptr);
      ImGui::TextUnformatted(g->name.c_str());
    }
    backoff_chip(*g);
    ImGui::SameLine();
    text_dim(g->provider ? "provider group" : "MX host");
    ImGui::SameLine();
    text_dim("  window " + fmt_short(g->window) + ", " + std::to_string(g->backoffs) +
             " back-offs");
    text_dim("in flight " + std::to_string(g->sessions) + " / " + std::to_string(g->session_limit) +
             "   queue " + fmt_count(g->ready) + "   replies " + fmt_rate(g->replies_per_s));
    text_dim("buckets: connect " + bucket_text(g->connect_tokens, g->connect_burst) + ", RCPT " +
             bucket_text(g->rcpt_tokens, g->rcpt_burst) + "   limits: connect " +
             fmt_limit(g->connect_rate) + ", RCPT " + fmt_limit(g->rcpt_rate));
    ImGui::Separator();
    group_editor(m, ui, act, marks, *g);
  }
  end_card();
}

// ---------------------------------------------------------------------------------------------
// [SECTION] Source IPs
// ---------------------------------------------------------------------------------------------

// What the start-up checks found about one source (sources[].doctor): the name it says in EHLO,
// its PTR, the blocklists and port 25, each on a line of the cell it belongs to.
void port25_chip(const std::string& v) {
  if (v == "ok")
    chip("port 25 ok", kGood);
  else if (v == "blocked" || v == "refused")
    chip("port 25 " + v, kBad);
  else if (v == "could_not_check")
    text_dim("port 25: could not check");
  else
    text_dim("port 25: not checked");
}

void sources_panel(const Model& m) {
  const auto& s = m.snap;
  const float h = ImGui::GetContentRegionAvail().y;
  // Checked sources take two lines (three with problems); unchecked ones one.
  float rows_h = 96;
  for (const auto& x : s.sources)
    rows_h += !x.doctor                    ? 30.f
              : x.doctor->problems.empty() ? 50.f
                                           : 50.f + 18.f * float(x.doctor->problems.size());
  if (s.sources.empty()) rows_h += 30;
  begin_card("src", ImVec2(0, std::min(std::max(140.f, h * 0.45f), rows_h)),
             "Source addresses (--source-ip) and what the start-up checks found");
  if (ImGui::BeginTable("sources", 6,
                        ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersInnerH |
                            ImGuiTableFlags_SizingStretchProp | ImGuiTableFlags_ScrollY)) {
    ImGui::TableSetupScrollFreeze(0, 1);
    ImGui::TableSetupColumn("source IP", 0, 1.2f);
    ImGui::TableSetupColumn("state", 0, 1.1f);
    ImGui::TableSetupColumn("warm-up", 0, 0.6f);
    ImGui::TableSetupColumn("HELO name / PTR", 0, 2.f);
    ImGui::TableSetupColumn("blocklists / port 25", 0, 1.8f);
    ImGui::TableSetupColumn("problems / blocked by (time left)", 0, 3.f);
    ImGui::TableHeadersRow();
    for (const auto& x : s.sources) {
      const SourceDoctor* d = x.doctor ? &*x.doctor : nullptr;
      ImGui::TableNextRow(0, 26);
      ImGui::TableNextColumn();
      ImGui::TextUnformatted(x.ip.c_str());
      ImGui::TableNextColumn();
      // Out of rotation (the checks took it out, or its proxy is down) first: nothing is sent
      // from it until it is back, whatever the MX groups think of it.
      if (d && !d->in_rotation)
        chip("out of rotation", kBad);
      else if (x.state == "down")
        chip("down", kBad);
      else if (x.state == "ok")
        chip("ok", kGood);
      else
        chip(x.state + " by " + std::to_string(x.blocked_by.size()) +
                 (x.blocked_by.size() == 1 ? " group" : " groups"),
             kBad);
      if (d && d->in_rotation) text_dim("in rotation");
      ImGui::TableNextColumn();
      text_right(std::to_string(x.warmup_level));
      ImGui::TableNextColumn();
      if (!d) {
        text_dim("not checked");
      } else {
        ImGui::TextUnformatted(d->helo.c_str());
        if (!d->helo_fqdn) {
          ImGui::SameLine();
          chip("not an FQDN", kWarn);
        }
        if (!d->ptr) {
          text_dim("PTR: none");
        } else {
          text_dim(*d->ptr);
          ImGui::SameLine();
          if (d->fcrdns)
            chip("FCrDNS ok", kGood);
          else
            chip("not confirmed", kWarn);
        }
      }
      ImGui::TableNextColumn();
      if (d) {
        if (!d->dnsbl_listed.empty()) {
          std::string zones;
          for (const auto& z : d->dnsbl_listed)
            zones += (zones.empty() ? "listed: " : ", ") + z;
          text_wrapped(kBad, zones);
        } else if (x.ip == "(kernel's choice)") {
          // Without --source-ip the address is not known before a connection, so the checks
          // ask no blocklist (serve names such a source so, engine/app/serve/metrics.cpp).
          text_dim("not asked (no --source-ip)");
        } else if (d->dnsbl_unchecked.empty()) {
          // Also what --no-dnsbl gives: `mxprobe doctor` says which.
          text_dim("no listing found");
        }
        if (!d->dnsbl_unchecked.empty())
          text_dim("could not check " + std::to_string(d->dnsbl_unchecked.size()));
        port25_chip(d->port25);
      }
      ImGui::TableNextColumn();
      if (d)
        for (const auto& p : d->problems)
          text_wrapped(kWarn, p);
      if (x.blocked_by.empty() && (!d || d->problems.empty())) text_dim("-");
      for (const auto& b : x.blocked_by) {
        text_colored(kBad, b.group);
        ImGui::SameLine();
        text_dim("until " + clock_text(s.time_ms + int64_t(b.for_s * 1000)) + " (" +
                 fmt_duration(b.for_s) + " left)");
      }
    }
    ImGui::EndTable();
  }
  end_card();
  begin_card("grp_state", ImVec2(0, 0), "MX groups: back-off state toward each group");
  if (ImGui::BeginTable("gstate", 6,
                        ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersInnerH |
                            ImGuiTableFlags_SizingStretchProp | ImGuiTableFlags_ScrollY)) {
    ImGui::TableSetupScrollFreeze(0, 1);
    ImGui::TableSetupColumn("MX group", 0, 2.f);
    ImGui::TableSetupColumn("state", 0, 1.8f);
    ImGui::TableSetupColumn("blocked source IPs", 0, 1.f);
    ImGui::TableSetupColumn("rate factor", 0, 0.8f);
    ImGui::TableSetupColumn("window", 0, 0.8f);
    ImGui::TableSetupColumn("back-offs", 0, 0.8f);
    ImGui::TableHeadersRow();
    for (const auto& g : s.groups) {
      size_t blocked = 0;
      double longest = 0;
      for (const auto& x : s.sources)
        for (const auto& b : x.blocked_by)
          if (b.group == g.name) {
            ++blocked;
            longest = std::max(longest, b.for_s);
          }
      ImGui::TableNextRow(0, 26);
      ImGui::TableNextColumn();
      ImGui::TextUnformatted(g.name.c_str());
      ImGui::TableNextColumn();
      if (blocked)
        chip("blocked for " + fmt_duration(longest), kBad);
      else
        backoff_chip(g);
      ImGui::TableNextColumn();
      text_right(std::to_string(blocked) + " / " + std::to_string(s.sources.size()),
                 blocked ? kBad : kDim);
      ImGui::TableNextColumn();
      text_right(fmt_short(g.rate_factor), g.rate_factor < 1 ? kWarn : kDim);
      ImGui::TableNextColumn();
      text_right(fmt_short(g.window), kDim);
      ImGui::TableNextColumn();
      text_right(fmt_count(g.backoffs), g.backoffs ? kWarn : kDim);
    }
    ImGui::EndTable();
  }
  end_card();
}

// ---------------------------------------------------------------------------------------------
// [SECTION] Cluster
// ---------------------------------------------------------------------------------------------

// A use bar: green below 70 %, amber to 95 %, red above (the cluster at its limit).
void use_bar(double use, const std::string& overlay) {
  const ImVec4 c = use >= 0.95 ? kBad : use >= 0.7 ? kWarn : kGood;
  ImGui::PushStyleColor(ImGuiCol_PlotHistogram, c);
  ImGui::ProgressBar(static_cast<float>(std::clamp(use, 0.0, 1.0)),
                     ImVec2(-FLT_MIN, ImGui::GetFrameHeight()), overlay.c_str());
  ImGui::PopStyleColor();
}

void cluster_panel(const Model& m, Marks& marks) {
  if (!m.snap.cluster) {
    text_dim("This node is not in a cluster (serve without --cluster).");
    return;
  }
  const Cluster& c = *m.snap.cluster;
  // The headline: Redis, the chunk queue, this node's leases.
  const float sp = ImGui::GetStyle().ItemSpacing.x, avail = ImGui::GetContentRegionAvail().x;
  const float kw = (avail - 3 * sp) / 4;
  kpi("k_redis", kw, "Redis", c.redis_up ? "up" : "down",
      c.redis_up ? (c.rtt_ms ? "round trip " + fmt_ms(*c.rtt_ms) : std::string("round trip -"))
                 : c.redis_down_reason,
      c.redis_up ? kGood : kBad);
  marks.mark("cluster.redis");
  ImGui::SameLine();
  kpi("k_nodes", kw, "Live nodes", std::to_string(c.nodes.size()),
      "this one: " + c.node + (c.registered ? "" : " (not registered)"), kAccent);
  ImGui::SameLine();
  kpi("k_chunks", kw, "Chunks waiting",
      c.have_chunks ? fmt_count(c.chunks_waiting) : std::string("-"),
      c.have_chunks
          ? fmt_count(c.chunks_claimed) + " claimed by " + fmt_count(c.chunk_consumers) + " workers"
          : std::string("not read yet"),
      kAccent);
  marks.mark("cluster.chunks");
  ImGui::SameLine();
  kpi("k_leases", kw, "Lease refills (this node)",
      c.have_limits ? fmt_count(c.lease_refills) : std::string("-"),
      c.have_limits
          ? fmt_count(c.lease_waits) + " short, " + fmt_count(c.lease_failures) + " failed"
          : std::string("global limits not in use"),
      c.have_limits && c.lease_failures ? kWarn : kAccent);

  const float h = ImGui::GetContentRegionAvail().y;
  const float rows_h = 96 + 30 * float(std::max<size_t>(c.nodes.size(), 1));
  begin_card("cl_nodes", ImVec2(0, std::min(std::max(140.f, h * 0.5f), rows_h)),
             ("Nodes (Redis " + c.redis_url + ")").c_str());
  if (ImGui::BeginTable("cluster_nodes", 6,
                        ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersInnerH |
                            ImGuiTableFlags_SizingStretchProp | ImGuiTableFlags_ScrollY)) {
    ImGui::TableSetupScrollFreeze(0, 1);
    ImGui::TableSetupColumn("node", 0, 1.6f);
    ImGui::TableSetupColumn("role", 0, 0.6f);
    ImGui::TableSetupColumn("source addresses", 0, 2.4f);
    ImGui::TableSetupColumn("sessions", 0, 0.7f);
    ImGui::TableSetupColumn("verified/s", 0, 0.8f);
    ImGui::TableSetupColumn("heartbeat", 0, 0.8f);
    ImGui::TableHeadersRow();
    for (const auto& n : c.nodes) {
      ImGui::TableNextRow(0, 26);
      ImGui::TableNextColumn();
      text_colored(n.self ? kAccent : kText, n.name + (n.self ? "  (this node)" : ""));
      marks.mark("cluster.node." + n.name);
      ImGui::TableNextColumn();
      chip(n.role, n.role == "worker" ? kGrey : kAccent);
      ImGui::TableNextColumn();
      std::string addrs;
      for (const auto& a : n.addresses)
        addrs += (addrs.empty() ? "" : ", ") + a;
      if (addrs.empty())
        text_dim("the kernel's choice");
      else
        ImGui::TextUnformatted(addrs.c_str());
      marks.mark("cluster.node." + n.name + ".addresses");
      ImGui::TableNextColumn();
      text_right(fmt_count(n.sessions));
      ImGui::TableNextColumn();
      text_right(n.verified_per_s ? fmt_rate(*n.verified_per_s) : std::string("-"), kDim);
      ImGui::TableNextColumn();
      // Older than two heartbeats: the node may be in trouble (it is gone at the TTL).
      const double age = n.heartbeat_age_s.value_or(-1);
      text_right(age < 0 ? std::string("-") : fmt_duration(age) + " ago", age > 5 ? kWarn : kDim);
    }
    ImGui::EndTable();
  }
  end_card();

  begin_card("cl_groups", ImVec2(0, 0),
             "MX groups: the whole cluster's use against each group's global limit");
  if (c.groups.empty()) text_dim("Not read yet.");
  if (!c.groups.empty() &&
      ImGui::BeginTable("cluster_groups", 4,
                        ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersInnerH |
                            ImGuiTableFlags_SizingStretchProp | ImGuiTableFlags_ScrollY)) {
    ImGui::TableSetupScrollFreeze(0, 1);
    ImGui::TableSetupColumn("MX group", 0, 1.4f);
    ImGui::TableSetupColumn("sessions (held / limit)", 0, 2.4f);
    ImGui::TableSetupColumn("connections (bucket used)", 0, 1.4f);
    ImGui::TableSetupColumn("back-off", 0, 0.7f);
    ImGui::TableHeadersRow();
    for (const auto& g : c.groups) {
      ImGui::TableNextRow(0, 26);
      ImGui::TableNextColumn();
      ImGui::AlignTextToFramePadding();  // level with the bars
      ImGui::TextUnformatted(g.group.c_str());
      ImGui::TableNextColumn();
      use_bar(g.use,
              fmt_count(g.sessions) + " / " + fmt_count(g.sessions_limit) +
                  (g.sessions_cap < g.sessions_limit ? "  (cap " + fmt_count(g.sessions_cap) + ")"
                                                     : std::string()));
      marks.mark("cluster.group." + g.group);
      ImGui::TableNextColumn();
      if (g.connect_use)
        use_bar(*g.connect_use, fmt_percent(*g.connect_use) + " of " + fmt_limit(g.connect_rate));
      else
        text_dim("unlimited");
      ImGui::TableNextColumn();
      ImGui::AlignTextToFramePadding();
      char f[32];
      std::snprintf(f, sizeof f, "x %.2f", g.backoff_factor);
      text_right(g.backoff_factor < 1 ? std::string(f) : std::string("-"),
                 g.backoff_factor < 1 ? kWarn : kDim);
    }
    ImGui::EndTable();
  }
  end_card();
}

// ---------------------------------------------------------------------------------------------
// [SECTION] Jobs
// ---------------------------------------------------------------------------------------------

ImVec4 job_state_color(const std::string& st) {
  if (st == "running") return kAccent;
  if (st == "finished") return kGood;
  if (st == "paused") return kWarn;
  if (st == "cancelled" || st == "failed") return kBad;
  return kGrey;
}

// The time of day of an RFC 3339 time ("2026-12-07T08:09:02Z": "08:09:02 UTC").
std::string time_of_day(const std::string& rfc3339) {
  return rfc3339.size() >= 19 ? rfc3339.substr(11, 8) + " UTC" : rfc3339;
}

// The table of a job's last webhook deliveries (webhook.recent, newest first): its rows all
// fit, so the card grows by this much.
float webhook_log_height(const JobWebhook& w) {
  const ImGuiStyle& st = ImGui::GetStyle();
  const float row = ImGui::GetTextLineHeight() + 2 + 2 * st.CellPadding.y;  // a chip's height
  return st.ItemSpacing.y + row * float(w.recent.size() + 1) + 10;
}

void webhook_log(const JobWebhook& w, float h) {
  ImGui::Spacing();
  if (!ImGui::BeginTable("webhook_log", 6,
                         ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersInnerH |
                             ImGuiTableFlags_SizingStretchProp | ImGuiTableFlags_ScrollY,
                         ImVec2(0, h - ImGui::GetStyle().ItemSpacing.y - 6)))
    return;
  ImGui::TableSetupScrollFreeze(0, 1);
  ImGui::TableSetupColumn("delivery", 0, 0.6f);
  ImGui::TableSetupColumn("event", 0, 0.8f);
  ImGui::TableSetupColumn("state", 0, 1.f);
  ImGui::TableSetupColumn("attempts", 0, 0.6f);
  ImGui::TableSetupColumn("last answer", 0, 2.4f);
  ImGui::TableSetupColumn("next try / acknowledged", 0, 1.4f);
  ImGui::TableHeadersRow();
  for (const auto& d : w.recent) {
    ImGui::TableNextRow();
    ImGui::TableNextColumn();
    ImGui::TextUnformatted(std::to_string(d.seq).c_str());
    ImGui::TableNextColumn();
    ImGui::TextUnformatted(d.event.c_str());
    ImGui::TableNextColumn();
    chip(d.state, d.state == "acknowledged" ? kGood
                  : d.state == "failed"     ? kBad
                  : d.state == "sending"    ? rgb(130, 180, 255)
                                            : kWarn);
    ImGui::TableNextColumn();
    ImGui::TextUnformatted(std::to_string(d.attempts).c_str());
    ImGui::TableNextColumn();
    // The HTTP status when there was one, else why the attempt failed (refused, no answer...).
    if (!d.last_error.empty())
      text_colored(kBad, d.last_error);
    else if (d.last_status)
      ImGui::TextUnformatted(("HTTP " + std::to_string(d.last_status)).c_str());
    else
      text_dim("not tried yet");
    ImGui::TableNextColumn();
    if (!d.acknowledged.empty())
      text_dim(time_of_day(d.acknowledged));
    else if (!d.next_try.empty())
      ImGui::TextUnformatted(time_of_day(d.next_try).c_str());
    else if (d.state == "failed")
      text_dim("gave up");
    else
      text_dim("-");
  }
  ImGui::EndTable();
}

void jobs_panel(Model& m, UiState& ui, Actions& act, Marks& marks, double now,
                const std::string& host) {
  const auto& s = m.snap;
  // Upload: the browser's file picker, then POST /v1/jobs (named after the file).
  if (ImGui::Button("Upload a list...", ImVec2(160, 0))) act.upload();
  marks.mark("jobs.upload");
  ImGui::SameLine();
  if (ui.upload_status.empty())
    text_dim("plain, CSV or gzip; results as CSV for a .csv file, else JSON Lines");
  else
    text_colored(ui.upload_ok ? kGood : kBad, ui.upload_status);
  if (s.jobs.empty()) {
    text_dim("No jobs yet. Upload a list, or start one over the API, for example:");
    text_colored(kText, "curl -H 'X-Mxprobe: 1' -X POST --data-binary @list.csv 'http://" + host +
                            "/v1/jobs?format=csv'");
    return;
  }
  if (ui.cancel_armed && now - ui.cancel_armed_at > 4) ui.cancel_armed = 0;
  ImGui::BeginChild("jobs_scroll", ImVec2(0, 0), false);
  for (auto it = s.jobs.rbegin(); it != s.jobs.rend(); ++it) {
    const Job& j = *it;
    const std::string id = std::to_string(j.id);
    ImGui::PushID(static_cast<int>(j.id));
    // A job's last webhook deliveries, when shown, make its card taller by their table.
    const bool log_open =
        j.webhook && !j.webhook->recent.empty() && ui.webhook_log_open.count(j.id);
    const float log_h = log_open ? webhook_log_height(*j.webhook) : 0;
    begin_card("job", ImVec2(0, 132 + log_h));
    {
      FontScope f(g_fonts ? g_fonts->big : nullptr);
      ImGui::TextUnformatted(("Job " + id + (j.name.empty() ? "" : "  " + j.name)).c_str());
    }
    marks.mark("job." + id + ".title");
    ImGui::SameLine();
    ImGui::SetCursorPosY(ImGui::GetCursorPosY() + 4);
    chip(j.state, job_state_color(j.state));
    ImGui::SameLine();
    const float bw = 120, dw = 160, sp = ImGui::GetStyle().ItemSpacing.x;
    const float buttons_x = ImGui::GetWindowContentRegionMax().x - 2 * bw - dw - 2 * sp;
    {
      // Cut short before the buttons (a long name leaves less room).
      const ImVec2 p = ImGui::GetCursorScreenPos();
      ImGui::PushClipRect(p, ImVec2(ImGui::GetWindowPos().x + buttons_x - sp, p.y + 40), true);
      text_dim("  " + j.format + ", " + fmt_count(j.records) + " records (" +
               fmt_bytes(j.input_bytes) + "), created " + j.created);
      ImGui::PopClipRect();
    }
    // Buttons at the right of the title line.
    const bool running = j.state == "running", paused = j.state == "paused";
    ImGui::SameLine(buttons_x);
    const bool armed = ui.cancel_armed == j.id;
    if (!running && !paused) {
      // An ended job: Delete (twice, like Cancel) takes its files off the server.
      ImGui::BeginDisabled(true);
      ImGui::Button("Pause", ImVec2(bw, 0));
      ImGui::EndDisabled();
      ImGui::SameLine();
      ImGui::PushStyleColor(ImGuiCol_Button, armed ? rgb(150, 45, 45) : rgb(60, 40, 44));
      if (ImGui::Button(armed ? "Really delete?" : "Delete", ImVec2(bw, 0))) {
        if (armed) {
          act.send(m.cmd_job("delete", j.id));
          ui.cancel_armed = 0;
        } else {
          ui.cancel_armed = j.id;
          ui.cancel_armed_at = now;
        }
      }
      ImGui::PopStyleColor();
      marks.mark("job." + id + ".delete");
    }
    if (running || paused) {
      ImGui::BeginDisabled(!running && !paused);
      if (paused) {
        if (ImGui::Button("Resume", ImVec2(bw, 0))) act.send(m.cmd_job("resume", j.id));
        marks.mark("job." + id + ".resume");
      } else {
        if (ImGui::Button("Pause", ImVec2(bw, 0))) act.send(m.cmd_job("pause", j.id));
        marks.mark("job." + id + ".pause");
      }
      ImGui::SameLine();
      ImGui::PushStyleColor(ImGuiCol_Button, armed ? rgb(150, 45, 45) : rgb(60, 40, 44));
      if (ImGui::Button(armed ? "Really cancel?" : "Cancel", ImVec2(bw, 0))) {
        if (armed) {
          act.send(m.cmd_job("cancel", j.id));
          ui.cancel_armed = 0;
        } else {
          ui.cancel_armed = j.id;
          ui.cancel_armed_at = now;
        }
      }
      ImGui::PopStyleColor();
      marks.mark("job." + id + ".cancel");
      ImGui::EndDisabled();
    }
    ImGui::SameLine();
    ImGui::BeginDisabled(j.results_link.empty());
    if (ImGui::Button("Download results", ImVec2(dw, 0)))
      act.download(j.results_link + "?format=" + j.format,
                   "mxprobe-job-" + id + "-results." + (j.format == "csv" ? "csv" : "jsonl"));
    marks.mark("job." + id + ".download");
    ImGui::EndDisabled();

    ImGui::Spacing();
    char overlay[96];
    std::snprintf(overlay, sizeof overlay, "%s / %s  (%s)", fmt_count(j.done).c_str(),
                  fmt_count(j.records).c_str(), fmt_percent(j.progress).c_str());
    ImGui::PushStyleColor(ImGuiCol_PlotHistogram, job_state_color(j.state));
    ImGui::ProgressBar(static_cast<float>(j.progress), ImVec2(-FLT_MIN, 22), overlay);
    ImGui::PopStyleColor();
    marks.mark("job." + id + ".progress");
    ImGui::Spacing();
    text_dim("rate");
    ImGui::SameLine();
    ImGui::TextUnformatted(fmt_rate(j.rate_per_s).c_str());
    ImGui::SameLine(0, 24);
    text_dim("ETA");
    ImGui::SameLine();
    ImGui::TextUnformatted(
        (j.eta_s ? fmt_duration(*j.eta_s) : std::string(running ? "-" : "")).c_str());
    ImGui::SameLine(0, 32);
    static const char* const names[] = {"deliverable", "undeliverable", "risky", "unknown"};
    for (int v = 0; v < kVerdictCount; ++v) {
      chip(fmt_count(j.counts[v]) + " " + names[v], kVerdictColor[v]);
      ImGui::SameLine();
    }
    ImGui::NewLine();
    // The webhook in one line: where to, and how its deliveries stand (docs/webhooks.md).
    if (j.webhook) {
      const JobWebhook& w = *j.webhook;
      text_dim("webhook");
      ImGui::SameLine();
      ImGui::TextUnformatted(w.url.c_str());
      ImGui::SameLine(0, 24);
      char line[160];
      std::snprintf(line, sizeof line, "%s of %s acknowledged", fmt_count(w.acknowledged).c_str(),
                    fmt_count(w.deliveries).c_str());
      ImGui::TextUnformatted(line);
      if (w.pending) {
        ImGui::SameLine(0, 16);
        chip(fmt_count(w.pending) + " pending", rgb(200, 160, 60));
      }
      if (w.failed) {
        ImGui::SameLine(0, 16);
        chip(fmt_count(w.failed) + " failed", rgb(200, 70, 70));
      }
      marks.mark("job." + id + ".webhook");
      if (!w.recent.empty()) {
        ImGui::SameLine(0, 24);
        if (ImGui::SmallButton(log_open ? "Hide deliveries" : "Last deliveries")) {
          if (log_open)
            ui.webhook_log_open.erase(j.id);
          else
            ui.webhook_log_open.insert(j.id);
        }
        marks.mark("job." + id + ".webhook_log");
      }
      if (log_open) {
        webhook_log(w, log_h);
        marks.mark("job." + id + ".webhook_table");
      }
    }
    end_card();
    ImGui::PopID();
  }
  ImGui::EndChild();
}

// ---------------------------------------------------------------------------------------------
// [SECTION] Check
// ---------------------------------------------------------------------------------------------

void transcript_view(const std::string& t) {
  FontScope f(g_fonts ? g_fonts->mono : nullptr);
  size_t pos = 0, longest = 0;
  while (pos < t.size()) {
    size_t end = t.find('\n', pos);
    if (end == std::string::npos) end = t.size();
    const std::string line = t.substr(pos, end - pos);
    pos = end + 1;
    ImVec4 c = kText;
    if (line.rfind("C: ", 0) == 0) c = rgb(130, 180, 255);
    if (line.rfind("S: ", 0) == 0 && line.size() > 3) c = reply_color(line.substr(3));
    text_wrapped(c, line);  // a long reply wraps, all of it in view
    if (line.size() > longest) {
      longest = line.size();
      g_marks->mark("transcript.longest");
    }
  }
}

void check_panel(Model& m, UiState& ui, Actions& act, Marks& marks, double now) {
  ImGui::SetNextItemWidth(420);
  const bool enter = ImGui::InputTextWithHint("##email", "address to verify, e.g. user@example.com",
                                              ui.check_email, sizeof ui.check_email,
                                              ImGuiInputTextFlags_EnterReturnsTrue);
  marks.mark("check.input");
  ImGui::SameLine();
  const bool click = ImGui::Button("Check", ImVec2(100, 0));
  marks.mark("check.run");
  if ((enter || click) && ui.check_email[0]) {
    std::string email(ui.check_email);
    while (!email.empty() && std::isspace(static_cast<unsigned char>(email.back())))
      email.pop_back();
    act.send(m.cmd_check(email, now));
    ui.selected_check = m.checks.back().id;
    ui.check_email[0] = 0;
  }
  ImGui::SameLine();
  text_dim("  verifies one address over SMTP (never DATA) and shows the dialogue");

  const float sp = ImGui::GetStyle().ItemSpacing.x, avail = ImGui::GetContentRegionAvail().x;
  const float lw = 300;
  begin_card("history", ImVec2(lw, 0), "Checks this session");
  for (auto it = m.checks.rbegin(); it != m.checks.rend(); ++it) {
    ImGui::PushID(static_cast<int>(it->id));
    const bool sel = ui.selected_check == it->id;
    const ImVec2 p = ImGui::GetCursorScreenPos();
    if (ImGui::Selectable("##c", sel, 0, ImVec2(0, 24))) ui.selected_check = it->id;
    ImDrawList* dl = ImGui::GetWindowDrawList();
    const ImVec4 c = !it->done                                   ? kAccent
                     : it->error.empty() || !it->verdict.empty() ? verdict_color(it->verdict)
                                                                 : kBad;
    dl->AddCircleFilled(ImVec2(p.x + 8, p.y + 12), 4.f, col(c));
    dl->AddText(ImVec2(p.x + 20, p.y + 4), col(kText), it->email.c_str());
    ImGui::PopID();
  }
  if (m.checks.empty()) text_dim("none yet");
  end_card();
  ImGui::SameLine();
  begin_card("record", ImVec2(avail - lw - sp, 0));
  const CheckRecord* c = nullptr;
  for (const auto& x : m.checks)
    if (x.id == ui.selected_check) c = &x;
  if (!c && !m.checks.empty()) c = &m.checks.back();
  if (!c) {
    text_dim("Type an address above and press Enter.");
  } else {
    {
      FontScope f(g_fonts ? g_fonts->big : nullptr);
      ImGui::TextUnformatted(c->email.c_str());
    }
    if (!c->done) {
      const char* spin = "|/-\\";
      text_colored(kAccent, std::string(1, spin[int(now * 8) % 4]) + " verifying... " +
                                fmt_duration(now - c->started) +
                                "  (a greylisted address can take minutes)");
      ImGui::Separator();
      text_dim("SMTP transcript, live");
      ImGui::PushStyleColor(ImGuiCol_ChildBg, rgb(18, 20, 25));
      ImGui::BeginChild("transcript", ImVec2(0, 0), true);
      if (c->transcript.empty())
        text_dim("(waiting for the DNS answer and the server's greeting)");
      else
        transcript_view(c->transcript);
      if (ImGui::GetScrollY() >= ImGui::GetScrollMaxY()) ImGui::SetScrollHereY(1.0f);
      ImGui::EndChild();
      ImGui::PopStyleColor();
    } else if (c->verdict.empty()) {
      text_colored(kBad, "failed: " + c->error);
    } else {
      chip(c->verdict, verdict_color(c->verdict));
      ImGui::SameLine();
      ImGui::TextUnformatted(c->reason.c_str());
      ImGui::SameLine();
      text_dim("  in " + fmt_ms(c->elapsed_ms) + ", " + std::to_string(c->attempts) +
               (c->attempts == 1 ? " attempt" : " attempts") +
               (c->cached.value_or(false) ? ", from the cache" : ""));
      // What decided, as the record says (a block, a resting source IP, a syntax error...).
      if (!c->error.empty()) {
        text_wrapped(c->verdict == "unknown" ? kWarn : kText, "why: " + c->error);
        marks.mark("check.why");
      }
      ImGui::Spacing();
      if (ImGui::BeginTable("rec", 4, ImGuiTableFlags_SizingStretchProp)) {
        auto row = [](const char* k, const std::string& v, const char* k2, const std::string& v2) {
          ImGui::TableNextRow();
          ImGui::TableNextColumn();
          text_dim(k);
          ImGui::TableNextColumn();
          text_wrapped(kText, v.empty() ? "-" : v);
          ImGui::TableNextColumn();
          text_dim(k2);
          ImGui::TableNextColumn();
          text_wrapped(kText, v2.empty() ? "-" : v2);
        };
        auto yn = [](std::optional<bool> b) {
          return b ? std::string(*b ? "yes" : "no") : std::string("-");
        };
        const std::string reply =
            c->code ? std::to_string(c->code) + " " + c->enhanced + " " + c->message : "";
        row("domain", c->domain, "catch-all", yn(c->catch_all));
        row("MX", c->mx, "role account", yn(c->role));
        row("disposable domain", yn(c->disposable), "free provider", yn(c->free));
        if (!c->suggestion.empty()) row("did you mean", c->suggestion, "", " ");
        row("MX address", c->mx_ip, "checked at", c->checked_at);
        row("provider", c->provider, "score", score_text(*c));
        // The address without its +tag, the tag, and the provider's canonical spelling.
        row("base address", c->base, "tag", c->tag);
        if (!c->canonical.empty()) row("canonical", c->canonical, "", " ");
        row("SMTP reply", reply, "error", c->error);
        // An unknown worth asking again says when (docs/verdicts.md, "When to ask again").
        if (!c->retry_after.empty()) row("retry after", c->retry_after, "", " ");
        ImGui::EndTable();
      }
      // Every MX host and address asked, in order, with what each said (the record's mx_tried).
      if (!c->mx_tried.empty()) {
        text_dim("MX tried");
        for (size_t i = 0; i < c->mx_tried.size(); ++i)
          text_wrapped(kText, std::to_string(i + 1) + ". " + c->mx_tried[i]);
        marks.mark("check.mx_tried");
      }
      ImGui::Separator();
      text_dim("SMTP transcript");
      ImGui::PushStyleColor(ImGuiCol_ChildBg, rgb(18, 20, 25));
      ImGui::BeginChild("transcript", ImVec2(0, 0), true);
      if (c->transcript.empty())
        text_dim("(" + no_transcript_why(*c) + ")");
      else
        transcript_view(c->transcript);
      ImGui::EndChild();
      marks.mark("check.transcript");
      ImGui::PopStyleColor();
    }
  }
  end_card();
}

// ---------------------------------------------------------------------------------------------
// [SECTION] Probe server
// ---------------------------------------------------------------------------------------------

std::string jtext(const nlohmann::json& j, const char* k) {
  if (!j.contains(k) || j[k].is_null()) return "-";
  if (j[k].is_string()) return j[k].get<std::string>();
  if (j[k].is_boolean()) return j[k].get<bool>() ? "yes" : "no";
  if (j[k].is_number_integer()) return std::to_string(j[k].get<int64_t>());
  if (j[k].is_number()) {
    char b[32];
    std::snprintf(b, sizeof b, "%.2f", j[k].get<double>());
    return b;
  }
  return j[k].dump();
}

void probe_report(const nlohmann::json& r) {
  auto row = [](const char* k, const std::string& v, ImVec4 c = kText) {
    ImGui::TableNextRow();
    ImGui::TableNextColumn();
    text_dim(k);
    ImGui::TableNextColumn();
    text_wrapped(c, v);
  };
  const auto& caps = r.contains("capabilities") ? r["capabilities"] : nlohmann::json::object();
  const auto& el = r.contains("error_limit") ? r["error_limit"] : nlohmann::json::object();
  if (ImGui::BeginTable("facts", 2, ImGuiTableFlags_SizingStretchProp | ImGuiTableFlags_RowBg)) {
    ImGui::TableSetupColumn("k", ImGuiTableColumnFlags_WidthFixed, 190);
    ImGui::TableSetupColumn("v", ImGuiTableColumnFlags_WidthStretch);
    row("server", jtext(r, "host") + "  (" + jtext(r, "address") + ")");
    row("greeting", jtext(r, "banner"));
    std::string cl;
    for (const char* k : {"pipelining", "starttls", "smtputf8", "enhancedstatuscodes", "8bitmime",
                          "chunking", "size"})
      if (caps.contains(k) && caps[k].is_boolean() && caps[k].get<bool>())
        cl += std::string(cl.empty() ? "" : ", ") + k;
    row("capabilities", cl.empty() ? "-" : cl);
    const bool ca = r.value("catch_all", false);
    row("catch-all", jtext(r, "catch_all") + "   " + jtext(r, "catch_all_reply"),
        r["catch_all"].is_null() ? kDim
        : ca                     ? kWarn
                                 : kGood);
    const bool grey = r.value("greylisting", false);
    row("greylisting",
        grey ? "yes, passed after " + jtext(r, "greylisting_delay_s") + " s" : std::string("no"),
        grey ? kWarn : kText);
    const bool conc =
        r.contains("max_concurrent_connections") && !r["max_concurrent_connections"].is_null();
    row("concurrent connections",
        conc ? jtext(r, "max_concurrent_connections") +
                   ", the next refused: " + jtext(r, "concurrency_refusal")
             : "no refusal (" + jtext(r, "concurrent_connections_tried") + " tried)",
        conc ? kWarn : kText);
    const bool rl = r.value("connection_rate_limited", false);
    row("connection rate",
        rl ? "refused after " + jtext(r, "connection_rate_refused_after") + " connections in " +
                 jtext(r, "connection_rate_window_s") + " s: " + jtext(r, "connection_rate_refusal")
           : "no refusal up to " + jtext(r, "connection_rate_tried_per_s") + "/s",
        rl ? kWarn : kText);
    std::string e = jtext(el, "bad_rcpts_tried") + " unknown recipients: ";
    e += el.contains("delay_after") && !el["delay_after"].is_null()
             ? "slower after " + jtext(el, "delay_after") + " (" + jtext(el, "delay_ms") + " ms)"
             : "no slow-down";
    e += el.contains("disconnect_after") && !el["disconnect_after"].is_null()
             ? ", hung up after " + jtext(el, "disconnect_after")
             : ", no hang-up";
    row("error limits", e);
    const bool tp = r.value("tarpit", false);
    row("tarpit", tp ? "yes: " + jtext(r, "slowest_reply_ms") + " ms" : std::string("no"),
        tp ? kBad : kText);
    row("connections", jtext(r, "connections") + " in " + jtext(r, "duration_s") + " s");
    if (r.contains("notes") && r["notes"].is_array())
      for (const auto& n : r["notes"])
        if (n.is_string()) row("note", n.get<std::string>(), kWarn);
    ImGui::EndTable();
  }
  ImGui::Spacing();
  text_dim("Latency per SMTP stage (ms)");
  if (r.contains("latency") && r["latency"].is_object() &&
      ImGui::BeginTable("lat", 6, ImGuiTableFlags_SizingStretchProp | ImGuiTableFlags_RowBg)) {
    // The numbers' columns have a fixed width (room for "999999.9"): proportional columns are
    // sized from earlier frames' contents, and until they settle (several frames, longer on a
    // loaded machine) a header and its numbers could end at different places.
    const float num_w = ImGui::CalcTextSize("999999.9").x;
    ImGui::TableSetupColumn("stage", ImGuiTableColumnFlags_WidthStretch);
    for (const char* h : {"count", "min", "p50", "p90", "max"})
      ImGui::TableSetupColumn(h, ImGuiTableColumnFlags_WidthFixed, num_w);
    // Numbers right-aligned under right-aligned headers.
    ImGui::TableNextRow(ImGuiTableRowFlags_Headers);
    ImGui::TableNextColumn();
    text_dim("stage");
    for (const char* h : {"count", "min", "p50", "p90", "max"}) {
      ImGui::TableNextColumn();
      text_right(h, kDim);
      g_marks->mark(std::string("probe.lat.head.") + h);
    }
    for (const char* stage : {"connect", "banner", "ehlo", "helo", "starttls", "mail_from",
                              "rcpt_to", "rset", "quit"}) {
      if (!r["latency"].contains(stage)) continue;
      const auto& s = r["latency"][stage];
      ImGui::TableNextRow();
      ImGui::TableNextColumn();
      ImGui::TextUnformatted(stage);
      for (const char* k : {"count", "min_ms", "p50_ms", "p90_ms", "max_ms"}) {
        ImGui::TableNextColumn();
        text_right(jtext(s, k));
        if (std::string_view(stage) == "rcpt_to")
          g_marks->mark(std::string("probe.lat.rcpt_to.") +
                        std::string(k).substr(0, k[3] == '_' ? 3 : 5));
      }
    }
    ImGui::EndTable();
  }
}

void probe_panel(Model& m, UiState& ui, Actions& act, Marks& marks, double now) {
  ImGui::SetNextItemWidth(320);
  const bool enter =
      ImGui::InputTextWithHint("##target", "domain, host[:port] or IP", ui.probe_target,
                               sizeof ui.probe_target, ImGuiInputTextFlags_EnterReturnsTrue);
  marks.mark("probe.input");
  ImGui::SameLine();
  ImGui::SetNextItemWidth(90);
  ImGui::InputInt("samples", &ui.probe_samples);
  ImGui::SameLine();
  ImGui::SetNextItemWidth(90);
  ImGui::InputInt("connections", &ui.probe_connections);
  ImGui::SameLine();
  ImGui::SetNextItemWidth(90);
  ImGui::InputFloat("conn/s", &ui.probe_rate, 1, 2, "%.0f");
  ui.probe_samples = std::clamp(ui.probe_samples, 1, 20);
  ui.probe_connections = std::clamp(ui.probe_connections, 0, 50);
  ui.probe_rate = std::clamp(ui.probe_rate, 0.f, 50.f);
  ImGui::SameLine();
  const bool click = ImGui::Button("Probe", ImVec2(90, 0));
  marks.mark("probe.run");
  if ((enter || click) && ui.probe_target[0]) {
    nlohmann::json o = {{"samples", ui.probe_samples}, {"max_connections", ui.probe_connections},
                        {"max_rate", ui.probe_rate},   {"rate_step", 1},
                        {"greylist_step", 30},         {"greylist_wait", 600}};
    act.send(m.cmd_probe(ui.probe_target, o, now));
    ui.selected_probe = m.probes.back().id;
  }
  text_dim(
      "Measures one mail server politely: latency per stage, capabilities, catch-all, "
      "greylisting, concurrent connections, connection rate, error limits, tarpit (never DATA).");

  const float sp = ImGui::GetStyle().ItemSpacing.x, avail = ImGui::GetContentRegionAvail().x;
  const float lw = 300;
  begin_card("probes", ImVec2(lw, 0), "Probes this session");
  for (auto it = m.probes.rbegin(); it != m.probes.rend(); ++it) {
    ImGui::PushID(static_cast<int>(it->id));
    const bool sel = ui.selected_probe == it->id;
    const ImVec2 p = ImGui::GetCursorScreenPos();
    if (ImGui::Selectable("##p", sel, 0, ImVec2(0, 24))) ui.selected_probe = it->id;
    ImDrawList* dl = ImGui::GetWindowDrawList();
    const ImVec4 c = !it->done ? kAccent : it->error.empty() ? kGood : kBad;
    dl->AddCircleFilled(ImVec2(p.x + 8, p.y + 12), 4.f, col(c));
    dl->AddText(ImVec2(p.x + 20, p.y + 4), col(kText), it->target.c_str());
    ImGui::PopID();
  }
  if (m.probes.empty()) text_dim("none yet");
  end_card();
  ImGui::SameLine();
  begin_card("report", ImVec2(avail - lw - sp, 0));
  const ProbeRecord* p = nullptr;
  for (const auto& x : m.probes)
    if (x.id == ui.selected_probe) p = &x;
  if (!p && !m.probes.empty()) p = &m.probes.back();
  if (!p) {
    text_dim("Type a domain (its best MX is probed), a host or an address, and press Enter.");
  } else {
    {
      FontScope f(g_fonts ? g_fonts->big : nullptr);
      ImGui::TextUnformatted(p->target.c_str());
    }
    if (!p->done) {
      const char* spin = "|/-\\";
      text_colored(kAccent, std::string(1, spin[int(now * 8) % 4]) + " probing... " +
                                fmt_duration(now - p->started) +
                                "  (greylisting and rate ramps take a while)");
    } else if (!p->error.empty()) {
      text_colored(kBad, "failed: " + p->error);
    } else {
      probe_report(p->report);
    }
  }
  end_card();
}

// ---------------------------------------------------------------------------------------------
// [SECTION] Login
// ---------------------------------------------------------------------------------------------

void login_panel(UiState& ui, const Connection& c, Actions& act, Marks& marks) {
  const ImVec2 avail = ImGui::GetContentRegionAvail();
  const ImVec2 size(460, 210);
  ImGui::SetCursorPos(ImVec2(ImGui::GetCursorPosX() + (avail.x - size.x) * 0.5f,
                             ImGui::GetCursorPosY() + std::max(0.f, (avail.y - size.y) * 0.35f)));
  begin_card("login", size);
  {
    FontScope f(g_fonts ? g_fonts->big : nullptr);
    ImGui::TextUnformatted("Sign in");
  }
  text_dim("This server needs its API token (mxprobe serve --token-file).");
  text_dim("It is kept in this tab only, never in the address bar.");
  ImGui::Spacing();
  ImGui::SetNextItemWidth(-FLT_MIN);
  if (ImGui::IsWindowAppearing()) ImGui::SetKeyboardFocusHere();
  const bool enter =
      ImGui::InputTextWithHint("##token", "token", ui.token, sizeof ui.token,
                               ImGuiInputTextFlags_Password | ImGuiInputTextFlags_EnterReturnsTrue);
  marks.mark("login.token");
  if (c.token_refused) text_colored(kBad, "That token was refused.");
  const bool click = ImGui::Button("Sign in", ImVec2(120, 0));
  marks.mark("login.submit");
  if ((enter || click) && ui.token[0]) {
    act.login(ui.token);
    std::memset(ui.token, 0, sizeof ui.token);
  }
  end_card();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------------

void setup_style(Fonts& fonts, float body_px) {
  ImGuiIO& io = ImGui::GetIO();
#ifdef MXC_HAVE_FONTS
  ImFontConfig cfg;
  cfg.FontDataOwnedByAtlas = false;
  cfg.OversampleH = 2;
  static const ImWchar ranges[] = {0x0020, 0x00FF, 0x2026, 0x2026, 0x2190,
                                   0x2193, 0x25CF, 0x25CF, 0};
  auto* sans = const_cast<unsigned char*>(kFontSans);
  auto* mono = const_cast<unsigned char*>(kFontMono);
  fonts.body = io.Fonts->AddFontFromMemoryTTF(sans, sizeof kFontSans, body_px, &cfg, ranges);
  fonts.big = io.Fonts->AddFontFromMemoryTTF(sans, sizeof kFontSans, body_px * 1.45f, &cfg, ranges);
  fonts.mono = io.Fonts->AddFontFromMemoryTTF(mono, sizeof kFontMono, body_px - 1, &cfg, ranges);
  fonts.small = io.Fonts->AddFontFromMemoryTTF(sans, sizeof kFontSans, body_px - 2, &cfg, ranges);
#else
  (void)body_px;
  fonts.body = io.Fonts->AddFontDefault();
#endif
  ImGui::StyleColorsDark();
  ImGuiStyle& st = ImGui::GetStyle();
  st.WindowRounding = 0;
  st.ChildRounding = 6;
  st.FrameRounding = 4;
  st.GrabRounding = 4;
  st.TabRounding = 4;
  st.ScrollbarRounding = 6;
  st.FramePadding = ImVec2(8, 5);
  st.ItemSpacing = ImVec2(10, 7);
  st.CellPadding = ImVec2(8, 4);
  st.WindowPadding = ImVec2(12, 12);
  st.ScrollbarSize = 12;
  st.WindowBorderSize = 0;
  st.ChildBorderSize = 1;
  ImVec4* c = st.Colors;
  c[ImGuiCol_Text] = kText;
  c[ImGuiCol_TextDisabled] = kDim;
  c[ImGuiCol_WindowBg] = rgb(19, 21, 26);
  c[ImGuiCol_ChildBg] = ImVec4(0, 0, 0, 0);
  c[ImGuiCol_Border] = kBorder;
  c[ImGuiCol_FrameBg] = rgb(38, 43, 53);
  c[ImGuiCol_FrameBgHovered] = rgb(46, 52, 64);
  c[ImGuiCol_FrameBgActive] = rgb(52, 60, 74);
  c[ImGuiCol_Button] = rgb(44, 50, 62);
  c[ImGuiCol_ButtonHovered] = rgb(56, 64, 80);
  c[ImGuiCol_ButtonActive] = rgb(66, 76, 96);
  c[ImGuiCol_Header] = rgb(44, 62, 92);
  c[ImGuiCol_HeaderHovered] = rgb(44, 54, 72);
  c[ImGuiCol_HeaderActive] = rgb(52, 70, 104);
  c[ImGuiCol_TableHeaderBg] = rgb(34, 38, 47);
  c[ImGuiCol_TableRowBg] = ImVec4(0, 0, 0, 0);
  c[ImGuiCol_TableRowBgAlt] = rgb(255, 255, 255, 0.025f);
  c[ImGuiCol_TableBorderLight] = kBorder;
  c[ImGuiCol_TableBorderStrong] = kBorder;
  c[ImGuiCol_Separator] = kBorder;
  c[ImGuiCol_CheckMark] = kAccent;
  c[ImGuiCol_PlotHistogram] = kAccent;
  c[ImGuiCol_ScrollbarBg] = ImVec4(0, 0, 0, 0);
}

void draw_console(Model& m, UiState& ui, const Connection& conn, Actions& act, const Fonts& fonts,
                  double now, Marks& marks) {
  g_fonts = &fonts;
  g_marks = &marks;
  marks.rects.clear();
  const ImGuiViewport* vp = ImGui::GetMainViewport();
  ImGui::SetNextWindowPos(vp->Pos);
  ImGui::SetNextWindowSize(vp->Size);
  ImGui::Begin("console", nullptr,
               ImGuiWindowFlags_NoDecoration | ImGuiWindowFlags_NoMove |
                   ImGuiWindowFlags_NoSavedSettings | ImGuiWindowFlags_NoBringToFrontOnFocus);
  top_bar(m, conn, now, 40);
  if (conn.link == Link::NeedToken) {
    login_panel(ui, conn, act, marks);
    ImGui::End();
    return;
  }
  sidebar(m, ui, marks, 190);
  ImGui::SameLine();
  ImGui::BeginChild("content", ImVec2(0, 0), false);
  if (!m.have_snapshot) {
    text_dim("Waiting for the first snapshot from the server...");
  } else {
    switch (ui.panel) {
      case Panel::Overview:
        overview(m);
        break;
      case Panel::Domains:
        domains_panel(m, ui, act, marks);
        break;
      case Panel::Sources:
        sources_panel(m);
        break;
      case Panel::Jobs:
        jobs_panel(m, ui, act, marks, now, conn.host);
        break;
      case Panel::Check:
        check_panel(m, ui, act, marks, now);
        break;
      case Panel::Probe:
        probe_panel(m, ui, act, marks, now);
        break;
      case Panel::Cluster:
        cluster_panel(m, marks);
        break;
      case Panel::Count:
        break;
    }
  }
  ImGui::EndChild();
  ImGui::End();
}

}  // namespace mxc
