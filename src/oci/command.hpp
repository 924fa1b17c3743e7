// The runc-compatible command line (`kapsel oci ...`, or kapsel invoked as `kapsel-runc`):
// runc's global flags, commands and their flags, its output, and its log file (--log,
// --log-format text|json), which containerd and Podman read on failure. Flags are taken as
// runc's CLI library takes them: `--flag value`, `--flag=value`, `-flag`, and single letters.
#pragma once

namespace kapsel::oci {

// argv[0] is the program's name; argv[1] the first global flag or the command.
[[nodiscard]] int run(int argc, char** argv);

}  // namespace kapsel::oci
