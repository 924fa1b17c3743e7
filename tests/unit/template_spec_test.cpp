#include <gtest/gtest.h>

#include "image/template.hpp"

namespace kapsel::image {
namespace {

TEST(TemplateSpecTest, ParsesTheThreeForms) {
  auto builtin = parse_spec("busybox");
  ASSERT_TRUE(builtin) << builtin.error().message;
  EXPECT_EQ(builtin->type, TemplateSpec::Type::builtin);
  EXPECT_EQ(builtin->source, "busybox");

  auto dir = parse_spec("dir:/srv/rootfs");
  ASSERT_TRUE(dir) << dir.error().message;
  EXPECT_EQ(dir->type, TemplateSpec::Type::dir);
  EXPECT_EQ(dir->source, "/srv/rootfs");

  auto tar = parse_spec("tar:images/debian.tar.gz");
  ASSERT_TRUE(tar) << tar.error().message;
  EXPECT_EQ(tar->type, TemplateSpec::Type::tar);
  EXPECT_EQ(tar->source, "images/debian.tar.gz");
}

TEST(TemplateSpecTest, PathsMayContainColons) {
  auto dir = parse_spec("dir:/srv/a:b");
  ASSERT_TRUE(dir);
  EXPECT_EQ(dir->source, "/srv/a:b");
}

TEST(TemplateSpecTest, ToStringRoundTrips) {
  for (const char* text :
       {"busybox", "dir:/srv/rootfs", "dir:relative/path", "tar:/x/y.tar.xz", "tar:a:b.tar"}) {
    auto spec = parse_spec(text);
    ASSERT_TRUE(spec) << text;
    EXPECT_EQ(spec->to_string(), text);
    auto again = parse_spec(spec->to_string());
    ASSERT_TRUE(again);
    EXPECT_EQ(again->type, spec->type);
    EXPECT_EQ(again->source, spec->source);
  }
}

TEST(TemplateSpecTest, UnknownFormsAreUsageErrorsNamingTheAcceptedForms) {
  for (const char* text :
       {"foo", "", "debian", "Busybox", "busybox:", "file:/x", "dir", "tar", "/srv/rootfs"}) {
    auto spec = parse_spec(text);
    ASSERT_FALSE(spec) << text;
    EXPECT_EQ(spec.error().kind, ErrorKind::usage) << text;
    EXPECT_NE(spec.error().message.find("use busybox, dir:PATH or tar:PATH"), std::string::npos)
        << spec.error().message;
    EXPECT_EQ(spec.error().message.find('\n'), std::string::npos);
  }
  EXPECT_EQ(parse_spec("foo").error().message,
            "unknown template 'foo': use busybox, dir:PATH or tar:PATH");
}

TEST(TemplateSpecTest, EmptyPathIsAUsageError) {
  for (const char* text : {"dir:", "tar:"}) {
    auto spec = parse_spec(text);
    ASSERT_FALSE(spec) << text;
    EXPECT_EQ(spec.error().kind, ErrorKind::usage);
    EXPECT_NE(spec.error().message.find(text), std::string::npos) << spec.error().message;
  }
}

}  // namespace
}  // namespace kapsel::image
