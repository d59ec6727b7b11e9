// Runs the `voxprint` binary as a shell command, as a user would, and keeps
// what it printed: shared by the CLI test files.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace voxprint::testing {

struct CliRun {
  int exit_code = -1;  // -1: did not exit normally (a signal)
  std::string out;
  std::string err;
};

inline std::string ReadText(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// One shell word, whatever `arg` holds.
inline std::string Quote(const std::string& arg) {
  std::string quoted = "'";
  for (char c : arg)
    quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

// Runs `prefix` (environment assignments and the program, already quoted)
// followed by `args`; stderr goes through a file in `scratch`.
inline CliRun RunCommand(const std::string& prefix,
                         const std::vector<std::string>& args,
                         const std::filesystem::path& scratch) {
  std::string command = prefix;
  for (const std::string& arg : args) {
    command += ' ';
    command += Quote(arg);
  }
  const std::filesystem::path err = scratch / "stderr.txt";
  command += " 2>" + Quote(err.string());
  CliRun run;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) return run;
  std::array<char, 4096> buffer;
  size_t n;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0)
    run.out.append(buffer.data(), n);
  const int status = ::pclose(pipe);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  run.err = ReadText(err);
  return run;
}

// A fresh directory for the running test, named after it; the caller
// removes it with RemoveScratchDirectory.
inline std::filesystem::path MakeScratchDirectory(const std::string& prefix) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() /
      (prefix + "-" + std::to_string(::getpid()) + "-" +
       ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::create_directories(dir);
  return dir;
}

inline void RemoveScratchDirectory(const std::filesystem::path& dir) {
  std::error_code ignored;
  if (!dir.empty()) std::filesystem::remove_all(dir, ignored);
}

}  // namespace voxprint::testing
