// TCP sockets by state in a network namespace, counted from one inet_diag dump per address family
// (NETLINK_SOCK_DIAG, what `ss -tan` and `ss -s` read), for the exporter's netbpf_tcp_connections gauge.
//
// Why inet_diag and not a BPF iter/tcp program: the dump lists exactly what ss lists (listeners, full sockets,
// request sockets reported as SYN_RECV, TIME_WAIT and FIN_WAIT2 timewait sockets reported by their substate),
// so the oracle and the gauge read the same kernel walk; it needs no BPF program, no privilege in the caller's
// own namespace, and only entering the namespace elsewhere (the same helper thread as ctnetlink). Both see only
// the namespace of the thread that opens them and walk the same hash tables; an iterator would count in the
// kernel and copy 13 numbers instead of one short message per socket, a saving that is small here: 20,000
// sockets in one namespace are counted in ~20 ms (docs/prometheus.md), less than `ss -tan` takes.
// No extensions are requested (idiag_ext = 0): only the fixed inet_diag_msg (and the few attributes the kernel
// always adds) per socket.
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>

#include <string>
#include <vector>

#include "common.h"
#include "netns.h"

namespace netbpf {

// Every TCP state up to TCP_NEW_SYN_RECV (bit 12: request sockets, which the kernel also adds whenever SYN_RECV is
// asked for, as `ss -a` does). Bit 13 (TCP_BOUND_INACTIVE, 6.7+: bound, never used sockets, in no connection
// table) is left out, as `ss -a` leaves it out.
static const uint32_t kAllStates = (1u << 13) - 1;
static const int kStates = 16;

// Counts the sockets of one family in the calling thread's namespace into counts[state]; 0 or an errno.
static int CountFamily(int fd, uint8_t family, uint32_t seq, uint64_t* counts) {
  struct {
    struct nlmsghdr nlh;
    struct inet_diag_req_v2 req;
  } msg;
  memset(&msg, 0, sizeof(msg));
  msg.nlh.nlmsg_len = sizeof(msg);
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  msg.nlh.nlmsg_seq = seq;
  msg.req.sdiag_family = family;
  msg.req.sdiag_protocol = IPPROTO_TCP;
  msg.req.idiag_states = kAllStates;
  struct sockaddr_nl kernel;
  memset(&kernel, 0, sizeof(kernel));
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd, &msg, sizeof(msg), 0, (struct sockaddr*)&kernel, sizeof(kernel)) < 0) return errno;
  // A dump fills each read up to the largest read seen, capped at 32 KiB (netlink_recvmsg): read that much.
  std::vector<uint8_t> buf(32768);
  for (;;) {
    ssize_t n = recv(fd, buf.data(), buf.size(), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;
    size_t len = (size_t)n;
    for (struct nlmsghdr* h = (struct nlmsghdr*)buf.data(); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_seq != seq) continue;
      if (h->nlmsg_type == NLMSG_DONE) {
        // The dump's own error, if it ended early, is the DONE message's payload.
        if (h->nlmsg_len >= NLMSG_LENGTH(sizeof(int))) {
          int err = *(const int*)NLMSG_DATA(h);
          if (err < 0) return -err;
        }
        return 0;
      }
      if (h->nlmsg_type == NLMSG_ERROR) {
        if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr))) return EIO;
        int err = ((const struct nlmsgerr*)NLMSG_DATA(h))->error;
        if (err < 0) return -err;
        continue;
      }
      if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || h->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg))) continue;
      uint8_t state = ((const struct inet_diag_msg*)NLMSG_DATA(h))->idiag_state;
      if (state < kStates) counts[state]++;
    }
  }
}

// sockDiagTcpStates(netnsPath | null) -> Promise<{ netns, states, elapsedNs }>: states[s] is the number of TCP
// sockets (IPv4 and IPv6) in state s (include/net/tcp_states.h) in that namespace; null: this process's.
class TcpStatesWorker : public Napi::AsyncWorker {
 public:
  TcpStatesWorker(Napi::Env env, std::string path)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), path_(std::move(path)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int ns_fd, open_err = OpenNetns(path_, &netns_, &ns_fd);
    if (open_err) {
      err_ = open_err;
      what_ = "open network namespace " + NetnsPath(path_);
      return;
    }
    int setns_err = RunInNetns(ns_fd, [&] {
      int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
      if (fd < 0) {
        err_ = errno;
        what_ = "sock_diag socket in " + NetnsPath(path_);
        return;
      }
      uint32_t seq = 1;
      for (uint8_t family : {(uint8_t)AF_INET, (uint8_t)AF_INET6}) {
        int err = CountFamily(fd, family, seq++, counts_);
        if (err) {
          err_ = err;
          what_ = std::string("inet_diag dump of TCP/") + (family == AF_INET ? "IPv4" : "IPv6") + " in " + NetnsPath(path_);
          break;
        }
      }
      close(fd);
    });
    if (ns_fd >= 0) close(ns_fd);
    if (setns_err) {
      err_ = setns_err;
      what_ = "enter network namespace " + NetnsPath(path_);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    elapsed_ns_ = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (err_) {
      Napi::Error error = Napi::Error::New(env, what_ + ": " + strerror(err_));
      error.Set("errno", Napi::Number::New(env, err_));
      deferred_.Reject(error.Value());
      return;
    }
    Napi::Object out = Napi::Object::New(env);
    Napi::Array states = Napi::Array::New(env, kStates);
    for (int i = 0; i < kStates; i++) states.Set((uint32_t)i, Napi::Number::New(env, (double)counts_[i]));
    out.Set("netns", Napi::Number::New(env, netns_));
    out.Set("states", states);
    out.Set("elapsedNs", Napi::Number::New(env, elapsed_ns_));
    deferred_.Resolve(out);
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::string path_;
  uint32_t netns_ = 0;
  uint64_t counts_[kStates] = {0};
  double elapsed_ns_ = 0;
  int err_ = 0;
  std::string what_;
};

static Napi::Value SockDiagTcpStates(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  TcpStatesWorker* w = new TcpStatesWorker(env, path);
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

Napi::Object InitSockDiag(Napi::Env env, Napi::Object exports) {
  exports.Set("sockDiagTcpStates", Napi::Function::New(env, SockDiagTcpStates));
  return exports;
}

}  // namespace netbpf
