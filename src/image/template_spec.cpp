// The command-line form of a template: "busybox", "dir:PATH" or "tar:PATH".
#include <string>
#include <string_view>

#include "image/template.hpp"

namespace kapsel::image {

namespace {

constexpr std::string_view kAcceptedForms = "use busybox, dir:PATH or tar:PATH";

}  // namespace

std::string TemplateSpec::to_string() const {
  switch (type) {
    case Type::builtin:
      return source;
    case Type::dir:
      return "dir:" + source;
    case Type::tar:
      return "tar:" + source;
  }
  return source;
}

Result<TemplateSpec> parse_spec(std::string_view text) {
  auto with_path = [&](TemplateSpec::Type type, std::string_view prefix) -> Result<TemplateSpec> {
    std::string_view path = text.substr(prefix.size());
    if (path.empty())
      return fail(ErrorKind::usage, "template '" + std::string(text) +
                                        "' names no path: " + std::string(kAcceptedForms));
    return TemplateSpec{type, std::string(path)};
  };
  if (text == "busybox") return TemplateSpec{TemplateSpec::Type::builtin, "busybox"};
  if (text.starts_with("dir:")) return with_path(TemplateSpec::Type::dir, "dir:");
  if (text.starts_with("tar:")) return with_path(TemplateSpec::Type::tar, "tar:");
  return fail(ErrorKind::usage,
              "unknown template '" + std::string(text) + "': " + std::string(kAcceptedForms));
}

}  // namespace kapsel::image
