#include "driver/uml/uml_image.hpp"

#include <gtest/gtest.h>

namespace kapsel::driver::uml {
namespace {

TEST(UmlImage, InittabPowersOffOnCtrlAltDelAndStartsTheAgent) {
  std::string in =
      "::sysinit:/etc/init.d/rcS\n"
      "# ::ctrlaltdel:/sbin/reboot is the default\n"
      "::ctrlaltdel:/sbin/reboot\n"
      "::shutdown:/etc/init.d/rcK\n";
  std::string out = uml_inittab(in);
  EXPECT_NE(out.find("::ctrlaltdel:/sbin/poweroff\n"), std::string::npos);
  EXPECT_EQ(out.find("\n::ctrlaltdel:/sbin/reboot"), std::string::npos);
  EXPECT_NE(out.find("# ::ctrlaltdel:/sbin/reboot is the default"), std::string::npos);
  EXPECT_NE(out.find("::shutdown:/etc/init.d/rcK\n"), std::string::npos);
  EXPECT_NE(out.find("::respawn:/sbin/kapsel-agent /dev/ttyS1\n"), std::string::npos);
}

TEST(UmlImage, EmptyInittabGetsAMinimalOne) {
  std::string out = uml_inittab("");
  EXPECT_NE(out.find("::sysinit:/etc/init.d/rcS"), std::string::npos);
  EXPECT_NE(out.find("::respawn:/sbin/kapsel-agent"), std::string::npos);
}

TEST(UmlImage, RunProgramReportsStderrOfAFailure) {
  auto st = run_program({"sh", "-c", "echo broken >&2; exit 3"});
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("broken"), std::string::npos);
  EXPECT_TRUE(run_program({"true"}));
  auto missing = run_program({"kapsel-no-such-program"});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ENOENT);
}

}  // namespace
}  // namespace kapsel::driver::uml
