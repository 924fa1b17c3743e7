// The command line itself: help for every command, the version, JSON that parses, and usage
// errors that follow the one-line error contract.
#include <algorithm>
#include <regex>
#include <sstream>

#include "harness.hpp"

namespace kapsel::testing {
namespace {

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override { KAPSEL_REQUIRE_ROOT(); }
  Kapsel k;
};

const std::vector<std::vector<std::string>> kCommands = {
    {"create"}, {"start"}, {"stop"},   {"restart"}, {"exec"},     {"enter"},
    {"run"},    {"list"},  {"status"}, {"destroy"}, {"template"}, {"template", "list"},
    {"ls"}};

TEST_F(CliTest, HelpWorksForEveryCommandAndWithoutRoot) {
  RunOptions nobody;
  nobody.uid = 65534;
  for (const auto& cmd : kCommands) {
    std::string joined;
    for (const auto& c : cmd) joined += (joined.empty() ? "" : " ") + c;
    SCOPED_TRACE(joined);
    for (const char* flag : {"--help", "-h"}) {
      auto args = cmd;
      args.push_back(flag);
      for (const auto& options : {RunOptions{}, nobody}) {
        auto r = k.run(args, options);
        EXPECT_EQ(r.exit_code, 0) << r;
        EXPECT_EQ(r.err, "") << r;
        // `ls` is list's alias and shows list's help.
        std::string usage = "Usage: kapsel " + (joined == "ls" ? std::string("list") : joined);
        EXPECT_NE(r.out.find(usage), std::string::npos) << r;
        EXPECT_NE(r.out.find("Example"), std::string::npos) << "no example in\n" << r;
      }
    }
  }
  // The commands that take a command to run show how.
  EXPECT_NE(k.run({"exec", "--help"}).out.find("NAME [--] CMD [ARG...]"), std::string::npos);
  EXPECT_NE(k.run({"run", "--help"}).out.find("-- CMD [ARG...]"), std::string::npos);
  // The top-level help lists every command and the exit codes.
  auto top = k.run({"--help"});
  EXPECT_EQ(top.exit_code, 0) << top;
  for (const char* c : {"create", "start", "stop", "restart", "exec", "enter", "run", "list",
                        "status", "destroy", "template"})
    EXPECT_TRUE(std::regex_search(top.out, std::regex(std::string("\n  ") + c + "[ ,]")))
        << c << "\n"
        << top;
  EXPECT_NE(top.out.find("Exit codes"), std::string::npos) << top;
  // Help never needs the store: nothing was created.
  EXPECT_EQ(::access(k.root().c_str(), F_OK), -1);
}

// Only the command being run is declared (src/cli/cli.cpp, command_word): each command that
// the top-level help lists must still be found, with global options before it too.
TEST_F(CliTest, EveryCommandOfTheTopLevelHelpIsFoundOnItsOwn) {
  auto top = k.run({"--help"});
  ASSERT_EQ(top.exit_code, 0) << top;
  std::istringstream lines(top.out.substr(top.out.find("Subcommands:")));
  std::string line;
  std::getline(lines, line);
  std::vector<std::string> names;
  while (std::getline(lines, line) && line.starts_with("  ")) {
    std::istringstream words(line);
    std::string word;
    words >> word;
    names.push_back(word.substr(0, word.find(',')));
  }
  ASSERT_GE(names.size(), 15u) << top;
  for (const auto& name : names) {
    auto r = k.run({"--json", "--root", k.root(), name, "--help"});
    EXPECT_EQ(r.exit_code, 0) << r;
    EXPECT_NE(r.out.find("Usage: kapsel " + name), std::string::npos) << r;
  }
  auto listed = k.run({"-q", "--run-dir", k.run_dir(), "--json", "ls"});
  EXPECT_EQ(listed.exit_code, 0) << listed;
  EXPECT_EQ(listed.out, "[]\n") << listed;
  // Help asked for before the command is the command's, as CLI11 always gave it.
  EXPECT_NE(k.run({"--help", "list"}).out.find("Usage: kapsel list"), std::string::npos);
}

TEST_F(CliTest, VersionPrintsTheVersion) {
  RunOptions nobody;
  nobody.uid = 65534;
  for (const auto& options : {RunOptions{}, nobody}) {
    auto r = k.run({"--version"}, options);
    EXPECT_EQ(r.exit_code, 0) << r;
    EXPECT_TRUE(std::regex_match(r.out, std::regex(R"(\d+\.\d+\.\d+\n)"))) << r;
    EXPECT_EQ(r.err, "") << r;
  }
}

TEST_F(CliTest, JsonOutputParses) {
  auto empty = k.run({"list", "--json"});
  ASSERT_EQ(empty.exit_code, 0) << empty;
  auto j = nlohmann::json::parse(empty.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << empty;
  EXPECT_TRUE(j.is_array());
  EXPECT_TRUE(j.empty());

  auto created = k.run({"--json", "create", "j1"});
  ASSERT_EQ(created.exit_code, 0) << created;
  auto c = nlohmann::json::parse(created.out, nullptr, false);
  ASSERT_TRUE(c.is_object()) << created;
  EXPECT_EQ(c["name"], "j1");
  ASSERT_EQ(k.run({"create", "j2"}).exit_code, 0);
  ASSERT_EQ(k.run({"start", "j2"}).exit_code, 0);

  // --json before or after the command.
  for (const auto& args :
       {std::vector<std::string>{"list", "--json"}, std::vector<std::string>{"--json", "list"},
        std::vector<std::string>{"ls", "--json"}}) {
    auto r = k.run(args);
    ASSERT_EQ(r.exit_code, 0) << r;
    auto list = nlohmann::json::parse(r.out, nullptr, false);
    ASSERT_TRUE(list.is_array()) << r;
    ASSERT_EQ(list.size(), 2u) << r;
    EXPECT_EQ(list[0]["name"], "j1");
    EXPECT_EQ(list[0]["state"], "stopped");
    EXPECT_EQ(list[1]["name"], "j2");
    EXPECT_EQ(list[1]["state"], "running");
    EXPECT_EQ(list[1]["kind"], "container");
    EXPECT_TRUE(list[1]["init_pid"].is_number_integer());
    EXPECT_TRUE(list[1]["monitor_pid"].is_number_integer());
  }
  for (const char* name : {"j1", "j2"}) {
    auto r = k.run({"status", "--json", name});
    ASSERT_EQ(r.exit_code, 0) << r;
    auto st = nlohmann::json::parse(r.out, nullptr, false);
    ASSERT_TRUE(st.is_object()) << r;
    EXPECT_EQ(st["name"], name);
    EXPECT_EQ(st["template"], "busybox");
    EXPECT_EQ(st["hostname"], name);
    EXPECT_TRUE(st["created"].is_number_integer());
  }
  auto t = k.run({"template", "list", "--json"});
  ASSERT_EQ(t.exit_code, 0) << t;
  auto templates = nlohmann::json::parse(t.out, nullptr, false);
  ASSERT_TRUE(templates.is_array()) << t;
  ASSERT_EQ(templates.size(), 1u);
  EXPECT_EQ(templates[0]["id"], "busybox");

  // A stopped VE's last exit is part of its status.
  ASSERT_EQ(k.run({"stop", "--kill", "j2"}).exit_code, 0);
  auto st = k.status("j2");
  EXPECT_EQ(st["state"], "stopped");
  EXPECT_EQ(st["last_exit"]["reason"], "killed") << st.dump(2);
}

TEST_F(CliTest, UsageErrorsAreOneLineWithExitCodeTwo) {
  struct Case {
    std::vector<std::string> args;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {{}, "command"},
      {{"bogus"}, "bogus"},
      {{"create"}, "name"},
      {{"start"}, "name"},
      {{"start", "a", "b"}, "b"},
      {{"stop", "--timeout", "x", "a"}, "--timeout"},
      {{"stop", "--timeout", "-1", "a"}, "--timeout"},
      {{"create", "--template"}, "--template"},
      {{"list", "--bogus"}, "--bogus"},
      {{"exec"}, "name"},
      {{"exec", "a"}, "command"},
      {{"run"}, "command"},
      {{"template"}, "command"},
      {{"start", "a", "--", "x"}, "--"},
  };
  for (const auto& c : cases) {
    std::string joined;
    for (const auto& a : c.args) joined += a + " ";
    SCOPED_TRACE("kapsel " + joined);
    auto r = k.run(c.args);
    EXPECT_EQ(r.exit_code, 2) << r;
    EXPECT_EQ(r.out, "") << r;
    EXPECT_TRUE(r.err.starts_with("kapsel: ")) << r;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r;
    EXPECT_NE(r.err.find(c.needle), std::string::npos) << r;
  }
}

}  // namespace
}  // namespace kapsel::testing
