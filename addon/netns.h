// Network namespaces for the addon's netlink readers (ctnetlink, sock_diag): a socket is bound to the namespace of
// the thread that creates it, so each is created on a short-lived helper thread that has entered the namespace;
// the JavaScript thread never changes namespace.
#pragma once

#include <stdint.h>

#include <functional>
#include <string>

namespace netbpf {

// The namespace file for `path` (empty: this process's own namespace, as its main thread sees it).
std::string NetnsPath(const std::string& path);

// Opens a network namespace file into *fd and gives its inode (the namespace's identity); returns 0 or an errno.
// For this process's own namespace (empty path) *fd is -1: nothing to enter (setns would need CAP_SYS_ADMIN even
// into one's own namespace, while netlink there needs at most CAP_NET_ADMIN).
int OpenNetns(const std::string& path, uint32_t* inode, int* fd);

// Runs fn on a helper thread that has entered the network namespace open as ns_fd (ns_fd -1: the namespace of the
// thread calling, which is this process's own: no thread of the addon ever stays in another); returns 0 or the
// setns errno. setns(CLONE_NEWNET) changes only the calling thread.
int RunInNetns(int ns_fd, const std::function<void()>& fn);

}  // namespace netbpf
