// Network namespaces for the addon's netlink readers (netns.h).
#include "netns.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <thread>

namespace netbpf {

std::string NetnsPath(const std::string& path) { return path.empty() ? "/proc/self/ns/net" : path; }

int OpenNetns(const std::string& path, uint32_t* inode, int* fd) {
  struct stat st;
  *fd = -1;
  if (path.empty()) {
    if (stat(NetnsPath(path).c_str(), &st) != 0) return errno;
    *inode = (uint32_t)st.st_ino;
    return 0;
  }
  *fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (*fd < 0) return errno;
  if (fstat(*fd, &st) != 0) {
    int err = errno;
    close(*fd);
    *fd = -1;
    return err;
  }
  *inode = (uint32_t)st.st_ino;
  return 0;
}

int RunInNetns(int ns_fd, const std::function<void()>& fn) {
  int err = 0;
  std::thread t([&] {
    if (ns_fd >= 0 && setns(ns_fd, CLONE_NEWNET) != 0) {
      err = errno;
      return;
    }
    fn();
  });
  t.join();
  return err;
}

}  // namespace netbpf
