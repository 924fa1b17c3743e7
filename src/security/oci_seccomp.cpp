#include "security/oci_seccomp.hpp"

#include <fcntl.h>
#include <seccomp.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <variant>

#include "common/unique_fd.hpp"
#include "security/seccomp_policy.hpp"

namespace kapsel::security {
namespace {

using nlohmann::json;

// Where a value is in the profile, for errors: "syscalls[3].args[0].op".
struct JsonPath {
  std::vector<std::variant<std::string, std::size_t>> parts;

  [[nodiscard]] JsonPath operator/(std::string key) const {
    JsonPath p = *this;
    p.parts.emplace_back(std::move(key));
    return p;
  }
  [[nodiscard]] JsonPath operator/(std::size_t index) const {
    JsonPath p = *this;
    p.parts.emplace_back(index);
    return p;
  }
  [[nodiscard]] std::string str() const {
    std::string s;
    for (const auto& part : parts) {
      if (const auto* key = std::get_if<std::string>(&part)) {
        if (!s.empty()) s += '.';
        s += *key;
      } else {
        s += '[' + std::to_string(std::get<std::size_t>(part)) + ']';
      }
    }
    return s;
  }
};

struct ActionName {
  const char* name;
  std::uint32_t action;  // SCMP_ACT_ERRNO and SCMP_ACT_TRACE get their data added
};

constexpr ActionName kActions[] = {
    {"SCMP_ACT_ALLOW", SCMP_ACT_ALLOW},
    {"SCMP_ACT_ERRNO", SCMP_ACT_ERRNO(0)},
    {"SCMP_ACT_KILL", SCMP_ACT_KILL},
    {"SCMP_ACT_KILL_PROCESS", SCMP_ACT_KILL_PROCESS},
    {"SCMP_ACT_KILL_THREAD", SCMP_ACT_KILL_THREAD},
    {"SCMP_ACT_LOG", SCMP_ACT_LOG},
    {"SCMP_ACT_TRACE", SCMP_ACT_TRACE(0)},
    {"SCMP_ACT_TRAP", SCMP_ACT_TRAP},
};
constexpr const char* kActionList =
    "SCMP_ACT_ALLOW, SCMP_ACT_ERRNO, SCMP_ACT_KILL, SCMP_ACT_KILL_PROCESS, SCMP_ACT_KILL_THREAD, "
    "SCMP_ACT_LOG, SCMP_ACT_TRACE or SCMP_ACT_TRAP";

struct OpName {
  const char* name;
  scmp_compare op;
};

constexpr OpName kOps[] = {
    {"SCMP_CMP_NE", SCMP_CMP_NE},
    {"SCMP_CMP_LT", SCMP_CMP_LT},
    {"SCMP_CMP_LE", SCMP_CMP_LE},
    {"SCMP_CMP_EQ", SCMP_CMP_EQ},
    {"SCMP_CMP_GE", SCMP_CMP_GE},
    {"SCMP_CMP_GT", SCMP_CMP_GT},
    {"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ},
};
constexpr const char* kOpList =
    "SCMP_CMP_NE, SCMP_CMP_LT, SCMP_CMP_LE, SCMP_CMP_EQ, SCMP_CMP_GE, SCMP_CMP_GT or "
    "SCMP_CMP_MASKED_EQ";

// Flags of seccomp(2) that only matter when the filter is loaded (see the header).
constexpr const char* kIgnoredFlags[] = {
    "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", "SECCOMP_FILTER_FLAG_TSYNC_ESRCH"};

constexpr unsigned kMaxErrno = 4095;  // the kernel's MAX_ERRNO: larger is no errno

// Compiles one profile; remembers the JSON path of the value its error is about.
class Compiler {
 public:
  Result<std::vector<sock_filter>> compile(const json& profile);
  // The value the last error is about; none for an error that is not the profile's.
  [[nodiscard]] const std::optional<JsonPath>& error_path() const { return error_path_; }

 private:
  // A bad profile: "PATH: message".
  tl::unexpected<Error> bad(const JsonPath& path, const std::string& message) {
    error_path_ = path;
    std::string where = path.str();
    return fail(ErrorKind::usage, where.empty() ? message : where + ": " + message);
  }
  // libseccomp refused something the profile asked for (rc is its negative errno).
  tl::unexpected<Error> refused(const JsonPath& path, int rc, const std::string& what) {
    error_path_ = path;
    return tl::unexpected(
        Error{ErrorKind::usage, -rc, path.str() + ": " + what + ": " + std::strerror(-rc)});
  }

  Result<std::uint64_t> unsigned_field(const json& obj, const JsonPath& path, const char* key,
                                       std::uint64_t max);
  Result<const json*> array_field(const json& obj, const JsonPath& path, const char* key,
                                  bool required);
  Result<std::uint32_t> action(const json& obj, const JsonPath& path, const char* action_key,
                               const char* errno_key);
  Status architectures(const json& profile, scmp_filter_ctx ctx);
  Status flags(const json& profile);
  Status rule(const json& rule, const JsonPath& path, std::uint32_t default_action,
              scmp_filter_ctx ctx);
  Result<scmp_arg_cmp> condition(const json& arg, const JsonPath& path);

  std::optional<JsonPath> error_path_;
};

const char* type_name(const json& j) {
  return j.type_name();
}

Result<std::uint64_t> Compiler::unsigned_field(const json& obj, const JsonPath& path,
                                               const char* key, std::uint64_t max) {
  const json& v = obj.at(key);
  // Parsed non-negative integers are unsigned; one built in C++ from an int is signed.
  bool non_negative =
      v.is_number_unsigned() || (v.is_number_integer() && v.get<std::int64_t>() >= 0);
  if (!non_negative) {
    return bad(path / key, std::string("must be an unsigned integer, not ") +
                               (v.is_number() ? "a negative or fractional number" : type_name(v)));
  }
  auto n = v.get<std::uint64_t>();
  if (n > max) {
    return bad(path / key,
               std::to_string(n) + " is out of range (at most " + std::to_string(max) + ")");
  }
  return n;
}

Result<const json*> Compiler::array_field(const json& obj, const JsonPath& path, const char* key,
                                          bool required) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    if (required) return bad(path / key, "missing (an array of system call names)");
    return nullptr;
  }
  if (!it->is_array())
    return bad(path / key, std::string("must be an array, not ") + type_name(*it));
  return &*it;
}

Result<std::uint32_t> Compiler::action(const json& obj, const JsonPath& path,
                                       const char* action_key, const char* errno_key) {
  auto it = obj.find(action_key);
  if (it == obj.end())
    return bad(path / action_key, std::string("missing (use ") + kActionList + ")");
  if (!it->is_string()) {
    return bad(path / action_key,
               std::string("must be a string, not ") + type_name(*it) + " (" + kActionList + ")");
  }
  const auto& name = it->get_ref<const std::string&>();
  if (name == "SCMP_ACT_NOTIFY") {
    return bad(path / action_key,
               "SCMP_ACT_NOTIFY is not supported: kapsel has no seccomp agent to pass the "
               "notifications to (use SCMP_ACT_ERRNO or SCMP_ACT_ALLOW)");
  }
  const ActionName* found = std::find_if(std::begin(kActions), std::end(kActions),
                                         [&](const ActionName& a) { return name == a.name; });
  if (found == std::end(kActions))
    return bad(path / action_key, "unknown action '" + name + "' (use " + kActionList + ")");

  bool takes_data = found->action == SCMP_ACT_ERRNO(0) || found->action == SCMP_ACT_TRACE(0);
  bool has_data = obj.contains(errno_key) && !obj.at(errno_key).is_null();
  if (has_data && !takes_data) {
    return bad(
        path / errno_key,
        std::string("is only for SCMP_ACT_ERRNO and SCMP_ACT_TRACE, not ") + name + " (remove it)");
  }
  if (!takes_data) return found->action;
  std::uint64_t data = EPERM;  // the spec's default, and runc's
  if (has_data) {
    // An errno is at most MAX_ERRNO; a tracer's message is 16 bits.
    std::uint64_t max = found->action == SCMP_ACT_ERRNO(0) ? kMaxErrno : 0xffff;
    auto n = unsigned_field(obj, path, errno_key, max);
    if (!n) return tl::unexpected(n.error());
    data = *n;
  }
  return found->action | static_cast<std::uint32_t>(data);
}

Status Compiler::architectures(const json& profile, scmp_filter_ctx ctx) {
  // Without a list the filter covers the native ABI only, as with runc; seccomp_init added it.
  auto list = array_field(profile, {}, "architectures", false);
  if (!list) return tl::unexpected(list.error());
  if (*list == nullptr) return {};
  JsonPath path = JsonPath{} / "architectures";
  for (std::size_t i = 0; i < (*list)->size(); ++i) {
    const json& v = (**list)[i];
    if (!v.is_string())
      return bad(path / i,
                 std::string("must be a string like SCMP_ARCH_X86_64, not ") + type_name(v));
    const auto& token = v.get_ref<const std::string&>();
    // libseccomp names them without the prefix, in lower case: SCMP_ARCH_X86_64 is "x86_64".
    constexpr std::string_view kPrefix = "SCMP_ARCH_";
    std::uint32_t arch = 0;
    if (token.starts_with(kPrefix)) {
      std::string name = token.substr(kPrefix.size());
      std::transform(name.begin(), name.end(), name.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      arch = seccomp_arch_resolve_name(name.c_str());
    }
    if (arch == 0) {
      return bad(path / i,
                 "unknown architecture '" + token +
                     "' (use libseccomp's names, such as SCMP_ARCH_X86_64, SCMP_ARCH_X86, "
                     "SCMP_ARCH_X32, SCMP_ARCH_AARCH64)");
    }
    int rc = seccomp_arch_add(ctx, arch);
    if (rc == -EDOM) {
      return bad(path / i, token +
                               " cannot share a filter with this machine's architecture (a "
                               "different byte order or word size); remove it");
    }
    if (rc < 0 && rc != -EEXIST) return refused(path / i, rc, "adding " + token);
  }
  return {};
}

Status Compiler::flags(const json& profile) {
  auto list = array_field(profile, {}, "flags", false);
  if (!list) return tl::unexpected(list.error());
  if (*list == nullptr) return {};
  JsonPath path = JsonPath{} / "flags";
  for (std::size_t i = 0; i < (*list)->size(); ++i) {
    const json& v = (**list)[i];
    if (!v.is_string()) return bad(path / i, std::string("must be a string, not ") + type_name(v));
    const auto& flag = v.get_ref<const std::string&>();
    if (flag == "SECCOMP_FILTER_FLAG_NEW_LISTENER") {
      return bad(path / i,
                 "SECCOMP_FILTER_FLAG_NEW_LISTENER is not supported: kapsel has no seccomp agent "
                 "to pass the listener to (remove it)");
    }
    if (std::find(std::begin(kIgnoredFlags), std::end(kIgnoredFlags), flag) ==
        std::end(kIgnoredFlags)) {
      return bad(path / i, "unknown flag '" + flag +
                               "' (use SECCOMP_FILTER_FLAG_TSYNC, SECCOMP_FILTER_FLAG_LOG or "
                               "SECCOMP_FILTER_FLAG_SPEC_ALLOW)");
    }
  }
  return {};
}

Result<scmp_arg_cmp> Compiler::condition(const json& arg, const JsonPath& path) {
  if (!arg.is_object())
    return bad(path, std::string("must be an object {index, value, op}, not ") + type_name(arg));
  for (const char* key : {"index", "value", "op"})
    if (!arg.contains(key)) return bad(path / key, "missing (a condition has index, value and op)");
  auto index = unsigned_field(arg, path, "index", 5);  // six arguments at most
  if (!index) return tl::unexpected(index.error());
  auto value = unsigned_field(arg, path, "value", UINT64_MAX);
  if (!value) return tl::unexpected(value.error());
  std::uint64_t value_two = 0;
  if (arg.contains("valueTwo") && !arg.at("valueTwo").is_null()) {
    auto v = unsigned_field(arg, path, "valueTwo", UINT64_MAX);
    if (!v) return tl::unexpected(v.error());
    value_two = *v;
  }
  const json& op = arg.at("op");
  if (!op.is_string())
    return bad(path / "op",
               std::string("must be a string, not ") + type_name(op) + " (" + kOpList + ")");
  const auto& name = op.get_ref<const std::string&>();
  const OpName* found = std::find_if(std::begin(kOps), std::end(kOps),
                                     [&](const OpName& o) { return name == o.name; });
  if (found == std::end(kOps))
    return bad(path / "op", "unknown operator '" + name + "' (use " + kOpList + ")");
  // For MASKED_EQ, value is the mask and valueTwo what the masked argument must equal; the other
  // operators compare with value (runc passes both the same way).
  return scmp_arg_cmp{static_cast<unsigned>(*index), found->op, *value, value_two};
}

Status Compiler::rule(const json& r, const JsonPath& path, std::uint32_t default_action,
                      scmp_filter_ctx ctx) {
  if (!r.is_object())
    return bad(path, std::string("must be an object {names, action}, not ") + type_name(r));
  // Docker's profile format conditions a rule on capabilities, architectures or the kernel;
  // OCI's has no such thing, and applying the rule unconditionally would widen it.
  for (const char* key : {"includes", "excludes"}) {
    auto it = r.find(key);
    if (it != r.end() && !it->is_null() && !(it->is_object() && it->empty())) {
      return bad(path / key,
                 "is Docker's profile format, not OCI's (convert the profile to OCI's: drop the "
                 "rules that do not apply, or use --seccomp default)");
    }
  }
  auto names = array_field(r, path, "names", true);
  if (!names) return tl::unexpected(names.error());
  auto act = action(r, path, "action", "errnoRet");
  if (!act) return tl::unexpected(act.error());
  std::vector<scmp_arg_cmp> conditions;
  auto args = array_field(r, path, "args", false);
  if (!args) return tl::unexpected(args.error());
  if (*args != nullptr) {
    for (std::size_t i = 0; i < (*args)->size(); ++i) {
      auto c = condition((**args)[i], path / "args" / i);
      if (!c) return tl::unexpected(c.error());
      conditions.push_back(*c);
    }
  }
  // Several conditions on one argument cannot be ANDed in one libseccomp rule; runc makes one
  // rule of each, which ORs them, and profiles are written for runc.
  std::array<int, 6> per_arg{};
  bool one_rule_each = false;
  for (const scmp_arg_cmp& c : conditions) one_rule_each |= ++per_arg[c.arg] > 1;

  for (std::size_t i = 0; i < (*names)->size(); ++i) {
    const json& v = (**names)[i];
    JsonPath name_path = path / "names" / i;
    if (!v.is_string()) return bad(name_path, std::string("must be a string, not ") + type_name(v));
    // Checked before skipping, so that a profile's mistakes show whatever the kernel.
    if (*act == default_action) continue;  // libseccomp refuses it; the default does it anyway
    const auto& name = v.get_ref<const std::string&>();
    int nr = seccomp_syscall_resolve_name(name.c_str());
    if (nr == __NR_SCMP_ERROR) continue;  // unknown here: newer than libseccomp, or misspelt
    auto add = [&](unsigned count, const scmp_arg_cmp* cmp) -> Status {
      int rc = seccomp_rule_add_array(ctx, *act, nr, count, cmp);
      if (rc < 0) return refused(name_path, rc, "adding " + name);
      return {};
    };
    if (!one_rule_each) {
      if (auto st = add(static_cast<unsigned>(conditions.size()), conditions.data()); !st)
        return st;
    } else {
      for (const scmp_arg_cmp& c : conditions)
        if (auto st = add(1, &c); !st) return st;
    }
  }
  return {};
}

Result<std::vector<sock_filter>> Compiler::compile(const json& profile) {
  if (!profile.is_object())
    return bad({}, std::string("the profile must be a JSON object, not ") + type_name(profile));
  auto default_action = action(profile, {}, "defaultAction", "defaultErrnoRet");
  if (!default_action) return tl::unexpected(default_action.error());
  auto listener = profile.find("listenerPath");
  if (listener != profile.end() && !listener->is_null() &&
      !(listener->is_string() && listener->get_ref<const std::string&>().empty())) {
    return bad(JsonPath{} / "listenerPath",
               "is not supported: kapsel has no seccomp agent support (remove listenerPath and "
               "SCMP_ACT_NOTIFY rules)");
  }
  if (auto st = flags(profile); !st) return tl::unexpected(st.error());

  SeccompContext ctx(seccomp_init(*default_action));
  if (!ctx) return fail(ErrorKind::failure, "creating a seccomp filter: libseccomp failed");
  scmp_filter_ctx c = ctx.get();
  // A call from an ABI the profile does not list is not one it was written for.
  if (int rc = seccomp_attr_set(c, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS); rc < 0)
    return sys_fail(-rc, "setting the seccomp filter's action for other ABIs");
  if (auto st = architectures(profile, c); !st) return tl::unexpected(st.error());

  auto rules = array_field(profile, {}, "syscalls", false);
  if (!rules) return tl::unexpected(rules.error());
  if (*rules != nullptr) {
    for (std::size_t i = 0; i < (*rules)->size(); ++i) {
      if (auto st = rule((**rules)[i], JsonPath{} / "syscalls" / i, *default_action, c); !st)
        return tl::unexpected(st.error());
    }
  }
  return export_seccomp_program(c, "the seccomp filter");
}

// Finds where in `text` (JSON that nlohmann has parsed) the value at a path starts, or the
// deepest part of the path that exists, to give an error's line.
class Locator {
 public:
  explicit Locator(std::string_view text) : text_(text) {}

  std::size_t find(const JsonPath& path) {
    pos_ = text_.starts_with("\xEF\xBB\xBF") ? 3 : 0;  // nlohmann skips a UTF-8 BOM
    skip_ws();
    std::size_t found = pos_;
    for (const auto& part : path.parts) {
      std::optional<std::size_t> next;
      if (const auto* key = std::get_if<std::string>(&part)) {
        next = member(*key);
      } else {
        next = element(std::get<std::size_t>(part));
      }
      if (!next) break;
      found = pos_ = *next;
    }
    return found;
  }

 private:
  [[nodiscard]] char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  void skip_ws() {
    while (pos_ < text_.size() && std::strchr(" \t\r\n", text_[pos_]) != nullptr) ++pos_;
  }
  void skip_string() {
    ++pos_;  // the opening quote
    while (pos_ < text_.size()) {
      char c = text_[pos_++];
      if (c == '\\') {
        ++pos_;
      } else if (c == '"') {
        return;
      }
    }
  }
  void skip_value() {
    char c = peek();
    if (c == '"') return skip_string();
    if (c == '{' || c == '[') {
      int depth = 0;
      while (pos_ < text_.size()) {
        char d = text_[pos_];
        if (d == '"') {
          skip_string();
          continue;
        }
        ++pos_;
        if (d == '{' || d == '[') {
          ++depth;
        } else if ((d == '}' || d == ']') && --depth == 0) {
          return;
        }
      }
      return;
    }
    while (pos_ < text_.size() && std::strchr(",]} \t\r\n", text_[pos_]) == nullptr) ++pos_;
  }
  // At an object: where the value of its member `key` starts (the last one, as nlohmann keeps).
  std::optional<std::size_t> member(const std::string& key) {
    if (peek() != '{') return std::nullopt;
    ++pos_;
    skip_ws();
    if (peek() == '}') return std::nullopt;
    std::optional<std::size_t> at;
    for (;;) {
      std::size_t start = pos_;
      skip_string();
      json name = json::parse(text_.substr(start, pos_ - start), nullptr, false);
      skip_ws();
      ++pos_;  // ':'
      skip_ws();
      if (name.is_string() && name.get_ref<const std::string&>() == key) at = pos_;
      skip_value();
      skip_ws();
      if (peek() != ',') return at;
      ++pos_;
      skip_ws();
    }
  }
  // At an array: where its element `index` starts.
  std::optional<std::size_t> element(std::size_t index) {
    if (peek() != '[') return std::nullopt;
    ++pos_;
    skip_ws();
    if (peek() == ']') return std::nullopt;
    for (std::size_t i = 0;; ++i) {
      if (i == index) return pos_;
      skip_value();
      skip_ws();
      if (peek() != ',') return std::nullopt;
      ++pos_;
      skip_ws();
    }
  }

  std::string_view text_;
  std::size_t pos_ = 0;
};

std::size_t line_of(std::string_view text, std::size_t offset) {
  offset = std::min(offset, text.size());
  return 1 + static_cast<std::size_t>(std::count(text.begin(), text.begin() + offset, '\n'));
}

}  // namespace

Result<std::vector<sock_filter>> compile_oci_seccomp(const json& seccomp, std::string_view origin) {
  Compiler compiler;
  auto program = compiler.compile(seccomp);
  if (!program) return tl::unexpected(program.error().context(origin));
  return program;
}

Result<std::vector<sock_filter>> compile_oci_seccomp_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno_fail(path);
  std::string text;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_fail(path);
    }
    if (n == 0) break;
    text.append(buf, static_cast<std::size_t>(n));
  }

  json profile;
  try {
    profile = json::parse(text);
  } catch (const json::parse_error& e) {
    // nlohmann's message reads "[json.exception.parse_error.101] parse error at line 3,
    // column 5: syntax error while parsing ..."; the part from "at line" on is the useful one.
    std::string what = e.what();
    auto at = what.find("parse error at ");
    std::string detail = at == std::string::npos ? what : what.substr(at + 12);
    return fail(ErrorKind::usage, path + ": not valid JSON " + detail);
  }
  Compiler compiler;
  auto program = compiler.compile(profile);
  if (!program) {
    Error e = program.error();
    if (compiler.error_path()) {
      std::size_t line = line_of(text, Locator(text).find(*compiler.error_path()));
      e.message = "line " + std::to_string(line) + ": " + e.message;
    }
    e.message = path + ": " + e.message;
    return tl::unexpected(std::move(e));
  }
  return program;
}

}  // namespace kapsel::security
