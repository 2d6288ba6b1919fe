// Issue 11, items 4, 5 and 9: what sluiced reads as its configuration and
// state, and the lock that keeps one daemon per set of pins.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "sluice/core/config.hpp"
#include "sluice/core/dataplane.hpp"
#include "sluice/core/error.hpp"
#include "sluice/core/regular_file.hpp"

using namespace sluice;

namespace {

class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/sluice-input-XXXXXX";
    path_ = mkdtemp(pattern);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::string load_error(const std::string& path) {
  try {
    load_config(path);
  } catch (const ConfigError& error) {
    return format_config_error(error);
  }
  ADD_FAILURE() << path << " was accepted as a configuration";
  return "";
}

ConfigError parse_error(const std::string& text) {
  try {
    parse_config(text, "node.toml");
  } catch (const ConfigError& error) {
    return error;
  }
  ADD_FAILURE() << "no error for:\n" << text;
  return ConfigError("", 0, 0, "", "");
}

void contains(const std::string& text, const std::string& part) {
  EXPECT_NE(text.find(part), std::string::npos) << "'" << part << "' not in: " << text;
}

}  // namespace

TEST(InputFiles, DirectoryIsNotAConfig) {
  TempDir dir;
  std::filesystem::create_directory(dir / "conf.toml");
  std::string message = load_error(dir / "conf.toml");
  contains(message, dir / "conf.toml" + ": cannot read the config file");
  contains(message, "is a directory, not a regular file");
}

TEST(InputFiles, EmptyFileIsNotAConfig) {
  TempDir dir;
  std::ofstream(dir / "empty.toml") << "\n  \n";
  contains(load_error(dir / "empty.toml"), "the config file is empty");
}

TEST(InputFiles, FifoIsRefusedWithoutBlocking) {
  TempDir dir;
  ASSERT_EQ(mkfifo((dir / "fifo.toml").c_str(), 0600), 0);
  // Would hang in open() without O_NONBLOCK: no writer ever comes.
  contains(load_error(dir / "fifo.toml"), "is a FIFO (named pipe), not a regular file");
  std::filesystem::create_symlink(dir / "fifo.toml", dir / "link.toml");
  contains(load_error(dir / "link.toml"), "is a FIFO (named pipe)");
}

TEST(InputFiles, DevZeroIsRefusedBeforeAnyRead) {
  contains(load_error("/dev/zero"), "/dev/zero is a character device, not a regular file");
  TempDir dir;
  std::filesystem::create_symlink("/dev/zero", dir / "zero.toml");
  contains(load_error(dir / "zero.toml"), "is a character device");
}

TEST(InputFiles, HugeFileIsRefusedBySize) {
  TempDir dir;
  {
    std::ofstream out(dir / "huge.toml");
    out << "[node]\nname = \"n\"\n";
  }
  ASSERT_EQ(truncate((dir / "huge.toml").c_str(), kMaxInputFileBytes + 1), 0);
  contains(load_error(dir / "huge.toml"), "more than the limit of 64 MiB");
  std::string text;
  EXPECT_THROW(read_regular_file(dir / "huge.toml", text, 16), Error);
  read_regular_file(dir / "huge.toml", text, kMaxInputFileBytes + 1);
  EXPECT_EQ(text.size(), kMaxInputFileBytes + 1);
}

TEST(InputFiles, MissingFileHasNoBogusPosition) {
  std::string message = load_error("/nonexistent/sluice.toml");
  EXPECT_EQ(message.rfind("/nonexistent/sluice.toml: cannot read", 0), 0u) << message;
  EXPECT_EQ(message.find(":0:0"), std::string::npos) << message;
}

TEST(InputFiles, UnreadableFileHasNoBogusPosition) {
  if (geteuid() == 0) GTEST_SKIP() << "root reads any file";
  TempDir dir;
  std::ofstream(dir / "secret.toml") << "[node]\n";
  chmod((dir / "secret.toml").c_str(), 0);
  EXPECT_EQ(load_error(dir / "secret.toml").find(":0:0"), std::string::npos);
}

TEST(InputFiles, MisspeltPluginTableListsKnownPlugins) {
  ConfigError e = parse_error(
      "[plugins]\ndir = \"" SLUICE_TEST_PLUGIN_DIR "\"\nenabled = [\"good_plugin\"]\n"
      "[plugins.good_plugn]\nx = 1\n");
  EXPECT_EQ(e.line, 4u);
  EXPECT_EQ(e.key, "plugins.good_plugn");
  contains(e.what(), "no plugin named 'good_plugn'");
  contains(e.what(), "known plugins: ");
  contains(e.what(), "good_plugin");
  contains(e.what(), "timer_plugin") ;  // installed, not enabled: still known
  // The table of an installed plugin that is not enabled is kept for later.
  parse_config("[plugins]\ndir = \"" SLUICE_TEST_PLUGIN_DIR "\"\n[plugins.timer_plugin]\nx = 1\n",
               "node.toml");
}

TEST(InputFiles, UnclosedInterfaceGlobsArePositioned) {
  for (const char* glob : {"[", "w[!", "eth[0-9", "a[]"}) {
    ConfigError e =
        parse_error(std::string("[interfaces]\nworkload = [\"") + glob + "\"]\n");
    EXPECT_EQ(e.line, 2u) << glob;
    EXPECT_EQ(e.key, "interfaces.workload") << glob;
    contains(e.what(), "unclosed '['");
  }
  parse_config("[interfaces]\nworkload = [\"eth[0-9]*\", \"w[!x]\", \"a[]]\"]\n", "node.toml");
}

TEST(InputFiles, NodeNameLengthAndCharacters) {
  ConfigError longer = parse_error("[node]\nname = \"" + std::string(254, 'a') + "\"\n");
  EXPECT_EQ(longer.key, "node.name");
  contains(longer.what(), "at most 253");
  ConfigError control = parse_error("[node]\nname = \"node\\u0007one\"\n");
  EXPECT_EQ(control.key, "node.name");
  contains(control.what(), "not a letter, a digit");
  EXPECT_EQ(parse_error("[node]\nname = \"a b\"\n").key, "node.name");
  EXPECT_EQ(parse_config("[node]\nname = \"node-1.example_x\"\n", "n.toml").node_name,
            "node-1.example_x");
}

// Item 4: "/sys/fs/bpf/." names the same pins as "/sys/fs/bpf".
TEST(InputFiles, InstanceLockFollowsThePinDirectorysRealIdentity) {
  NodeConfig plain = parse_config("[bpf]\ninstance = \"locktest-" + std::to_string(getpid()) +
                                      "\"\n",
                                  "a.toml");
  NodeConfig dotted = parse_config("[bpf]\nroot = \"/sys/fs/bpf/.\"\ninstance = \"locktest-" +
                                       std::to_string(getpid()) + "\"\n",
                                   "b.toml");
  NodeConfig doubled = parse_config("[bpf]\nroot = \"/sys//fs/bpf\"\ninstance = \"locktest-" +
                                        std::to_string(getpid()) + "\"\n",
                                    "c.toml");
  InstanceLock first(plain, 0);
  EXPECT_THROW(InstanceLock(dotted, 0), Error);
  EXPECT_THROW(InstanceLock(doubled, 0), Error);
}
