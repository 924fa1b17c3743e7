#include "monitor/oom_watch.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>

namespace kapsel::monitor {
namespace {

// The kernel's OOM report reaches the log after the cgroup's notification (v1 notifies before
// it picks a victim), and a busy host may delay it further; past this, the kill is counted by
// the cgroup but recorded without a victim.
constexpr auto kLogWait = std::chrono::seconds(2);

// The value of "key=" in a comma-separated list of key=value pairs.
std::optional<std::string_view> field(std::string_view text, std::string_view key) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find(',', pos);
    if (end == std::string_view::npos) end = text.size();
    auto item = text.substr(pos, end - pos);
    if (item.size() > key.size() && item.substr(0, key.size()) == key && item[key.size()] == '=')
      return item.substr(key.size() + 1);
    pos = end + 1;
  }
  return std::nullopt;
}

}  // namespace

std::optional<store::OomEvent> parse_oom_kill(std::string_view record, std::string_view memcg) {
  // /dev/kmsg: "PRIORITY,SEQUENCE,TIMESTAMP,FLAGS[,...];MESSAGE\n" then optional " KEY=VALUE"
  // continuation lines.
  auto semi = record.find(';');
  if (semi == std::string_view::npos) return std::nullopt;
  auto message = record.substr(semi + 1);
  message = message.substr(0, message.find('\n'));
  constexpr std::string_view kPrefix = "oom-kill:";
  if (message.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  message.remove_prefix(kPrefix.size());
  auto oom_memcg = field(message, "oom_memcg");
  if (!oom_memcg) return std::nullopt;
  bool ours = *oom_memcg == memcg ||
              (oom_memcg->size() > memcg.size() && oom_memcg->substr(0, memcg.size()) == memcg &&
               (*oom_memcg)[memcg.size()] == '/');
  if (!ours) return std::nullopt;
  store::OomEvent e;
  e.cgroup = std::string(*oom_memcg);
  if (auto task = field(message, "task")) e.comm = std::string(*task);
  if (auto pid = field(message, "pid")) e.pid = std::atoi(std::string(*pid).c_str());
  if (auto uid = field(message, "uid")) e.uid = std::atoi(std::string(*uid).c_str());
  return e;
}

OomWatch::OomWatch(UniqueFd event, UniqueFd kmsg, std::string memcg, Recorder record)
    : event_(std::move(event)),
      kmsg_(std::move(kmsg)),
      memcg_(std::move(memcg)),
      record_(std::move(record)) {}

Result<OomWatch> OomWatch::open(UniqueFd event, std::string memcg, Recorder record) {
  UniqueFd kmsg(::open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (!kmsg) return errno_fail("opening /dev/kmsg to read the kernel's OOM reports");
  if (::lseek(kmsg.get(), 0, SEEK_END) < 0) return errno_fail("seeking to the end of /dev/kmsg");
  return OomWatch(std::move(event), std::move(kmsg), std::move(memcg), std::move(record));
}

int OomWatch::timeout_ms() const {
  if (!pending_) return -1;
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline_ - std::chrono::steady_clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

void OomWatch::on_event() {
  // eventfd (v1) gives 8 bytes, inotify (v2) a list of events: draining either re-arms it.
  char buf[4096];
  while (::read(event_.get(), buf, sizeof buf) > 0) {
  }
  pending_ = true;
  deadline_ = std::chrono::steady_clock::now() + kLogWait;
  on_kmsg();  // the report may be there already
}

void OomWatch::on_kmsg() {
  // One record per read(2); a record is at most about 1 KiB (PRINTK_MESSAGE_MAX).
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(kmsg_.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EPIPE) continue;  // records were overwritten before we read them
      break;                         // EAGAIN: caught up
    }
    if (n == 0) break;
    if (auto e = parse_oom_kill(std::string_view(buf, static_cast<size_t>(n)), memcg_)) {
      e->at = ::time(nullptr);
      record_(*e);
      pending_ = false;
    }
  }
}

void OomWatch::on_timeout() {
  pending_ = false;
}

}  // namespace kapsel::monitor
