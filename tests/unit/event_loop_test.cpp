// The event loop behind Host::every / watch_fd / watch_netlink.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sched.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "sluice/core/error.hpp"
#include "sluice/core/event_loop.hpp"
#include "sluice/core/unique_fd.hpp"

using namespace sluice;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

struct Pipe {
  UniqueFd read_end, write_end;
  Pipe() {
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
    read_end.reset(fds[0]);
    write_end.reset(fds[1]);
  }
  void poke() { ASSERT_EQ(write(write_end.get(), "x", 1), 1); }
  void drain() {
    char buffer[64];
    while (read(read_end.get(), buffer, sizeof(buffer)) > 0) {
    }
  }
};

// Runs the loop until `deadline`.
void run_until(EventLoop& loop, Clock::time_point deadline) {
  for (auto now = Clock::now(); now < deadline; now = Clock::now())
    loop.run_once(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now) + 1ms);
}

struct Loop {
  std::vector<std::string> errors;
  EventLoop loop{[this](const std::string& message) { errors.push_back(message); }};
};

}  // namespace

TEST(EventLoop, TimerFiresAtItsInterval) {
  Loop l;
  std::vector<Clock::time_point> fired;
  auto start = Clock::now();
  Subscription timer = l.loop.every(40ms, [&] { fired.push_back(Clock::now()); }, "timer");
  EXPECT_TRUE(timer);
  run_until(l.loop, start + 230ms);
  // 40, 80, 120, 160, 200 ms: five, give or take a late wake-up.
  ASSERT_GE(fired.size(), 4u);
  EXPECT_LE(fired.size(), 5u);
  EXPECT_GE(fired.front() - start, 40ms) << "the first run is one interval from now, not at once";
  for (std::size_t i = 1; i < fired.size(); ++i)
    EXPECT_GE(fired[i] - fired[i - 1], 20ms) << "runs " << i - 1 << " and " << i;
  EXPECT_TRUE(l.errors.empty());
}

TEST(EventLoop, ATimerNeedsAPositiveInterval) {
  Loop l;
  EXPECT_THROW(l.loop.every(0ms, [] {}, "timer"), Error);
}

TEST(EventLoop, FdCallbackRunsWhenReadable) {
  Loop l;
  Pipe p;
  int runs = 0;
  Subscription watch = l.loop.watch_fd(p.read_end.get(), [&] {
    ++runs;
    p.drain();
  }, "pipe");
  EXPECT_EQ(l.loop.run_once(0ms), 0u) << "nothing to read yet";
  EXPECT_EQ(runs, 0);
  p.poke();
  EXPECT_EQ(l.loop.run_once(1000ms), 1u);
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(l.loop.run_once(20ms), 0u) << "drained: not readable any more";
  p.poke();
  EXPECT_EQ(l.loop.run_once(1000ms), 1u);
  EXPECT_EQ(runs, 2);
}

TEST(EventLoop, TheSameFdCanBeWatchedTwiceAndClosedBeforeCancelling) {
  Loop l;
  std::optional<Pipe> p(std::in_place);
  int first = 0, second = 0;
  Subscription a = l.loop.watch_fd(p->read_end.get(), [&] { ++first; }, "a");
  Subscription b = l.loop.watch_fd(p->read_end.get(), [&] { ++second; }, "b");
  p->poke();
  l.loop.run_once(1000ms);
  EXPECT_EQ(first, 1);
  EXPECT_EQ(second, 1);
  p.reset();  // the plugin closed its fd first: the loop watches its own duplicate
  a.cancel();
  b.cancel();
  EXPECT_EQ(l.loop.size(), 0u);
}

TEST(EventLoop, ADestroyedSubscriptionNeverRunsAgain) {
  Loop l;
  int runs = 0;
  std::optional<Subscription> timer(l.loop.every(10ms, [&] { ++runs; }, "timer"));
  run_until(l.loop, Clock::now() + 35ms);
  ASSERT_GE(runs, 1);
  timer.reset();
  int before = runs;
  EXPECT_EQ(l.loop.size(), 0u);
  usleep(30000);  // it would have expired meanwhile
  run_until(l.loop, Clock::now() + 50ms);
  EXPECT_EQ(runs, before);
  EXPECT_EQ(l.loop.fire_timers(), 0u);
}

TEST(EventLoop, ASubscriptionCancelledByAnotherCallbackOfTheSameBatchDoesNotRun) {
  Loop l;
  Pipe p, q;
  Subscription a, b;
  int runs = 0;
  // Each cancels the other: whichever epoll reports first, the other must not run.
  a = l.loop.watch_fd(p.read_end.get(), [&] { ++runs; p.drain(); b.cancel(); }, "a");
  b = l.loop.watch_fd(q.read_end.get(), [&] { ++runs; q.drain(); a.cancel(); }, "b");
  p.poke();
  q.poke();
  usleep(1000);
  EXPECT_EQ(l.loop.run_once(1000ms), 1u);
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(l.loop.run_once(20ms), 0u) << "the cancelled one's fd is still readable: not watched";
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(l.loop.size(), 1u);
}

TEST(EventLoop, ACallbackMayCancelItself) {
  Loop l;
  Subscription timer;
  int runs = 0;
  std::string kept = "captured state";
  timer = l.loop.every(5ms, [&, kept] {
    ++runs;
    timer.cancel();  // destroys this very callback's subscription
    EXPECT_EQ(kept, "captured state") << "the callback stays alive until it returns";
  }, "timer");
  run_until(l.loop, Clock::now() + 40ms);
  EXPECT_EQ(runs, 1);
  EXPECT_FALSE(timer);
}

TEST(EventLoop, AThrowingCallbackIsLoggedAndTheLoopGoesOn) {
  Loop l;
  Pipe p;
  int throws = 0, reads = 0;
  Subscription bad = l.loop.every(10ms, [&] {
    ++throws;
    throw std::runtime_error("the map is gone");
  }, "plugin 'x': its timer");
  Subscription good = l.loop.watch_fd(p.read_end.get(), [&] {
    ++reads;
    p.drain();
  }, "pipe");
  run_until(l.loop, Clock::now() + 45ms);
  p.poke();
  run_until(l.loop, Clock::now() + 30ms);
  EXPECT_GE(throws, 2) << "a callback that threw keeps its subscription";
  EXPECT_EQ(reads, 1);
  ASSERT_FALSE(l.errors.empty());
  EXPECT_NE(l.errors[0].find("plugin 'x': its timer failed: the map is gone"), std::string::npos)
      << l.errors[0];
  EXPECT_EQ(l.errors.size(), static_cast<std::size_t>(throws));
}

TEST(EventLoop, FireTimersRunsEachTimerOnceNow) {
  Loop l;
  Pipe p;
  std::vector<std::string> order;
  Subscription slow = l.loop.every(3600s, [&] { order.push_back("slow"); }, "slow");
  Subscription fd = l.loop.watch_fd(p.read_end.get(), [&] { order.push_back("fd"); }, "fd");
  Subscription fast = l.loop.every(1800s, [&] { order.push_back("fast"); }, "fast");
  EXPECT_EQ(l.loop.fire_timers(), 2u);
  EXPECT_EQ(order, (std::vector<std::string>{"slow", "fast"}));
}

TEST(EventLoop, AHandleOutlivingTheLoopCancelsNothing) {
  Subscription timer;
  {
    Loop l;
    timer = l.loop.every(10ms, [] {}, "timer");
  }
  timer.cancel();  // no crash: the loop and its callbacks are gone
  EXPECT_FALSE(timer);
}

TEST(EventLoop, NetlinkChangesAreReportedOncePerBatch) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (a private network namespace)";
  // A private network namespace, on a thread of its own, so the test's
  // address changes touch nothing else.
  std::string failure;
  int changes = -1;
  std::thread([&] {
    if (unshare(CLONE_NEWNET) != 0) {
      failure = "unshare(CLONE_NEWNET) failed";
      return;
    }
    Loop l;
    int seen = 0;
    Subscription watch = l.loop.watch_netlink(NETLINK_ROUTE, RTMGRP_IPV4_IFADDR, [&] { ++seen; },
                                              "addresses");
    if (l.loop.run_once(20ms) != 0) failure = "a change reported before any";
    if (std::system("ip link set lo up && ip addr add 198.18.9.1/32 dev lo && "
                    "ip addr add 198.18.9.2/32 dev lo") != 0)
      failure = "ip addr add failed";
    usleep(20000);
    l.loop.run_once(1000ms);
    changes = seen;
  }).join();
  ASSERT_EQ(failure, "");
  EXPECT_EQ(changes, 1) << "two messages waiting, one callback: read the state again";
}
