// `mxprobe serve`'s WebSocket commands: the table drives the dispatch and every text that names
// the commands, so none can be left out of the help (as `probe` once was).
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "app/serve/service.hpp"

namespace mxp::app::serve_impl {
namespace {

TEST(ServeWsCommands, TableHasEveryCommandOnceWithHandlerAndHelp) {
  std::set<std::string> names;
  for (const auto& c : Service::ws_commands()) {
    EXPECT_FALSE(c.name.empty());
    EXPECT_TRUE(c.handler != nullptr) << c.name;
    EXPECT_FALSE(c.help.empty()) << c.name;
    EXPECT_TRUE(names.insert(std::string(c.name)).second) << "twice: " << c.name;
  }
  // What docs/protocol.md documents.
  EXPECT_EQ(names, (std::set<std::string>{"ping", "check", "probe", "set_group_policy", "pause",
                                          "resume", "cancel", "delete"}));
}

TEST(ServeWsCommands, HelpAndErrorsNameEveryCommand) {
  const std::string missing = Service::ws_command_error(nullptr);
  const std::string nope = "nope";
  const std::string unknown = Service::ws_command_error(&nope);
  const auto help = Service::ws_help();
  EXPECT_EQ(missing.rfind("cmd: a string (", 0), 0u) << missing;
  EXPECT_EQ(unknown.rfind("unknown command: nope (", 0), 0u) << unknown;
  for (const auto& c : Service::ws_commands()) {
    const std::string n(c.name);
    EXPECT_NE(missing.find(n), std::string::npos) << n << " not in: " << missing;
    EXPECT_NE(unknown.find(n), std::string::npos) << n << " not in: " << unknown;
    ASSERT_TRUE(help.contains(n)) << n;
    EXPECT_EQ(help[n], std::string(c.help));
  }
  EXPECT_EQ(help.size(), Service::ws_commands().size());
  // Today's wording, unchanged for clients that show it.
  EXPECT_EQ(missing,
            "cmd: a string (ping, check, probe, set_group_policy, pause, resume, cancel, delete)");
}

}  // namespace
}  // namespace mxp::app::serve_impl
