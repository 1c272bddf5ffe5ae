// Native ctnetlink: conntrack NEW and DESTROY events and table dumps from NETLINK_NETFILTER sockets, one set per
// network namespace, parsed into struct ct_event records (bpf/conntrack.h, flag CT_FLAG_NETLINK) so that one
// TypeScript decoder serves the BPF and the netlink paths. Records reach JavaScript in batches, one ArrayBuffer
// of many records per crossing, framed like addon/ring_buffer.cc ([u32 length][record]...).
//
// A raw netlink socket and our own attribute parser, no libmnl/libnetfilter_conntrack: the few attributes a
// ct_event needs are plain TLVs (nfnetlink_conntrack.h), the addon ships prebuilt and statically linked, and the
// socket options that make delivery reliable and loss countable (NETLINK_BROADCAST_ERROR, NETLINK_NO_ENOBUFS,
// SO_RCVBUFFORCE, SO_MEMINFO) are single setsockopt/getsockopt calls either way.
//
// Sockets are bound to the namespace they are created in: each is created on a short-lived helper thread that
// has entered the namespace with setns(CLONE_NEWNET); the JavaScript thread never changes namespace.
//
// Per namespace: a NEW socket (never reliable: a NEW the kernel cannot queue is dropped and counted in the
// socket's sk_drops, so loss is exact), a DESTROY socket (reliable by default: NETLINK_BROADCAST_ERROR makes
// ctnetlink report the failed delivery, and the kernel keeps the entry on its dying list and re-delivers the
// event; NETLINK_NO_ENOBUFS keeps the socket usable after an overrun), and a request socket for dumps.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <endian.h>
#include <arpa/inet.h>
#include <linux/types.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common.h"
#include "conntrack.h"
#include "netns.h"

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

namespace netbpf {

// Attributes newer than the build machine's uapi header.
static const int kCtaTimestampEvent = 27;  // CTA_TIMESTAMP_EVENT (Linux 6.x): when the event was generated
static const int kMaxAttr = 40;             // above every CTA_* / CTA_TUPLE_* / CTA_PROTO_* number in use

static uint64_t NowNs(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

// ---- parsing ---------------------------------------------------------------------------------------------------

struct Attr {
  const uint8_t* data = nullptr;
  uint16_t len = 0;
};

static void ParseAttrs(const uint8_t* p, size_t len, Attr* tb) {
  for (int i = 0; i <= kMaxAttr; i++) tb[i] = Attr();
  while (len >= NLA_HDRLEN) {
    const struct nlattr* a = (const struct nlattr*)p;
    if (a->nla_len < NLA_HDRLEN || a->nla_len > len) return;
    int type = a->nla_type & NLA_TYPE_MASK;
    if (type <= kMaxAttr) {
      tb[type].data = p + NLA_HDRLEN;
      tb[type].len = a->nla_len - NLA_HDRLEN;
    }
    size_t step = NLA_ALIGN(a->nla_len);
    if (step >= len) return;
    p += step;
    len -= step;
  }
}

static bool U8(const Attr& a, uint8_t* out) {
  if (!a.data || a.len < 1) return false;
  *out = a.data[0];
  return true;
}
static bool Be16(const Attr& a, uint16_t* out) {
  if (!a.data || a.len < 2) return false;
  uint16_t v;
  memcpy(&v, a.data, 2);
  *out = ntohs(v);
  return true;
}
static bool Be32(const Attr& a, uint32_t* out) {
  if (!a.data || a.len < 4) return false;
  uint32_t v;
  memcpy(&v, a.data, 4);
  *out = ntohl(v);
  return true;
}
static bool Be64(const Attr& a, uint64_t* out) {
  if (!a.data || a.len < 8) return false;
  uint64_t v;
  memcpy(&v, a.data, 8);
  *out = be64toh(v);
  return true;
}

// One direction's tuple: addresses as 16 bytes (IPv4-mapped for IPv4, as the BPF side stores them), ports in host
// order; for ICMP the id and (type << 8 | code), which is what the BPF side reads from the tuple's u.all fields.
static bool ParseTuple(const Attr& nest, uint8_t family, uint8_t src[16], uint8_t dst[16], uint16_t* sport,
                       uint16_t* dport, uint8_t* proto) {
  if (!nest.data) return false;
  Attr t[kMaxAttr + 1], ip[kMaxAttr + 1], pr[kMaxAttr + 1];
  ParseAttrs(nest.data, nest.len, t);
  if (!t[CTA_TUPLE_IP].data || !t[CTA_TUPLE_PROTO].data) return false;
  ParseAttrs(t[CTA_TUPLE_IP].data, t[CTA_TUPLE_IP].len, ip);
  memset(src, 0, 16);
  memset(dst, 0, 16);
  if (family == NETBPF_AF_INET) {
    if (!ip[CTA_IP_V4_SRC].data || ip[CTA_IP_V4_SRC].len < 4 || !ip[CTA_IP_V4_DST].data || ip[CTA_IP_V4_DST].len < 4)
      return false;
    src[10] = src[11] = dst[10] = dst[11] = 0xff;
    memcpy(src + 12, ip[CTA_IP_V4_SRC].data, 4);
    memcpy(dst + 12, ip[CTA_IP_V4_DST].data, 4);
  } else {
    if (!ip[CTA_IP_V6_SRC].data || ip[CTA_IP_V6_SRC].len < 16 || !ip[CTA_IP_V6_DST].data || ip[CTA_IP_V6_DST].len < 16)
      return false;
    memcpy(src, ip[CTA_IP_V6_SRC].data, 16);
    memcpy(dst, ip[CTA_IP_V6_DST].data, 16);
  }
  ParseAttrs(t[CTA_TUPLE_PROTO].data, t[CTA_TUPLE_PROTO].len, pr);
  if (!U8(pr[CTA_PROTO_NUM], proto)) return false;
  *sport = *dport = 0;
  if (!Be16(pr[CTA_PROTO_SRC_PORT], sport)) {
    uint8_t type = 0, code = 0;
    bool v6 = *proto == 58;
    Be16(pr[v6 ? CTA_PROTO_ICMPV6_ID : CTA_PROTO_ICMP_ID], sport);
    U8(pr[v6 ? CTA_PROTO_ICMPV6_TYPE : CTA_PROTO_ICMP_TYPE], &type);
    U8(pr[v6 ? CTA_PROTO_ICMPV6_CODE : CTA_PROTO_ICMP_CODE], &code);
    *dport = (uint16_t)(type << 8 | code);
  } else {
    Be16(pr[CTA_PROTO_DST_PORT], dport);
  }
  return true;
}

enum class Parsed { kEntry, kIgnored, kMalformed };

// A ctnetlink conntrack message (event or dump reply) as a ct_event. kind: CT_EVENT_* of the record.
// realtime_ns/mono_ns: the two clocks read at receipt, to place kernel wall-clock stamps on CLOCK_MONOTONIC.
static Parsed ParseCtMessage(const struct nlmsghdr* nlh, uint32_t netns, uint8_t dump_kind, uint64_t mono_ns,
                             uint64_t realtime_ns, struct ct_event* e, uint32_t* id) {
  if ((nlh->nlmsg_type >> 8) != NFNL_SUBSYS_CTNETLINK) return Parsed::kIgnored;
  int msg = nlh->nlmsg_type & 0xff;
  uint8_t kind;
  if (dump_kind) {
    kind = dump_kind;
  } else if (msg == IPCTNL_MSG_CT_DELETE) {
    kind = CT_EVENT_DESTROY;
  } else if (msg == IPCTNL_MSG_CT_NEW && (nlh->nlmsg_flags & (NLM_F_CREATE | NLM_F_EXCL))) {
    kind = CT_EVENT_NEW;  // an UPDATE is IPCTNL_MSG_CT_NEW without these flags (that group is not subscribed)
  } else {
    return Parsed::kIgnored;
  }
  if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(struct nfgenmsg))) return Parsed::kMalformed;
  const struct nfgenmsg* nfg = (const struct nfgenmsg*)NLMSG_DATA(nlh);
  if (nfg->nfgen_family != NETBPF_AF_INET && nfg->nfgen_family != NETBPF_AF_INET6) return Parsed::kIgnored;
  const uint8_t* attrs = (const uint8_t*)nfg + NLMSG_ALIGN(sizeof(struct nfgenmsg));
  size_t attrs_len = nlh->nlmsg_len - NLMSG_LENGTH(sizeof(struct nfgenmsg));
  Attr tb[kMaxAttr + 1];
  ParseAttrs(attrs, attrs_len, tb);

  memset(e, 0, sizeof(*e));
  e->family = nfg->nfgen_family;
  e->kind = kind;
  e->netns = netns;
  e->flags = CT_FLAG_NETLINK;
  uint8_t reply_proto = 0;
  if (!ParseTuple(tb[CTA_TUPLE_ORIG], nfg->nfgen_family, e->orig_src, e->orig_dst, &e->orig_sport, &e->orig_dport,
                  &e->protocol) ||
      !ParseTuple(tb[CTA_TUPLE_REPLY], nfg->nfgen_family, e->reply_src, e->reply_dst, &e->reply_sport,
                  &e->reply_dport, &reply_proto))
    return Parsed::kMalformed;
  *id = 0;
  Be32(tb[CTA_ID], id);
  Be32(tb[CTA_STATUS], &e->status);
  Be32(tb[CTA_MARK], &e->mark);
  Be16(tb[CTA_ZONE], &e->zone);
  if (tb[CTA_PROTOINFO].data) {
    Attr pi[kMaxAttr + 1], tcp[kMaxAttr + 1];
    ParseAttrs(tb[CTA_PROTOINFO].data, tb[CTA_PROTOINFO].len, pi);
    if (pi[CTA_PROTOINFO_TCP].data) {
      ParseAttrs(pi[CTA_PROTOINFO_TCP].data, pi[CTA_PROTOINFO_TCP].len, tcp);
      U8(tcp[CTA_PROTOINFO_TCP_STATE], &e->tcp_state);
    }
  }
  bool acct = false;
  for (int dir = 0; dir < 2; dir++) {
    const Attr& nest = tb[dir == 0 ? CTA_COUNTERS_ORIG : CTA_COUNTERS_REPLY];
    if (!nest.data) continue;
    Attr c[kMaxAttr + 1];
    ParseAttrs(nest.data, nest.len, c);
    uint64_t v64;
    uint32_t v32;
    if (Be64(c[CTA_COUNTERS_PACKETS], &v64) || (Be32(c[CTA_COUNTERS32_PACKETS], &v32) && (v64 = v32, true))) {
      e->packets[dir] = v64;
      acct = true;
    }
    if (Be64(c[CTA_COUNTERS_BYTES], &v64) || (Be32(c[CTA_COUNTERS32_BYTES], &v32) && (v64 = v32, true))) {
      e->bytes[dir] = v64;
      acct = true;
    }
  }
  if (acct) e->flags |= CT_FLAG_ACCT;
  // The event's own time when the kernel gives one (wall clock), else the time of receipt.
  uint64_t when_real = 0;
  if (tb[CTA_TIMESTAMP].data) {
    Attr ts[kMaxAttr + 1];
    ParseAttrs(tb[CTA_TIMESTAMP].data, tb[CTA_TIMESTAMP].len, ts);
    uint64_t start = 0;
    if (Be64(ts[CTA_TIMESTAMP_START], &start) && start) {
      e->start_ns = start;
      e->flags |= CT_FLAG_TSTAMP;
    }
    if (kind == CT_EVENT_DESTROY) Be64(ts[CTA_TIMESTAMP_STOP], &when_real);
  }
  if (!when_real) Be64(tb[kCtaTimestampEvent], &when_real);
  e->ts_ns = mono_ns;
  if (when_real && when_real <= realtime_ns && realtime_ns - when_real < mono_ns) e->ts_ns = mono_ns - (realtime_ns - when_real);
  return Parsed::kEntry;
}

// ---- sockets -----------------------------------------------------------------------------------------------------

static int SetInt(int fd, int level, int opt, int value) { return setsockopt(fd, level, opt, &value, sizeof(value)); }

static uint32_t SocketDrops(int fd) {
  uint32_t mem[SK_MEMINFO_VARS] = {0};
  socklen_t len = sizeof(mem);
  if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mem, &len) != 0 || len < sizeof(uint32_t) * (SK_MEMINFO_DROPS + 1)) return 0;
  return mem[SK_MEMINFO_DROPS];
}

// A ctnetlink socket in the calling thread's namespace, subscribed to `groups` (NFNLGRP_* bit mask; 0: requests).
// Returns the fd or -errno.
static int OpenCtSocket(uint32_t groups, bool reliable, int rcvbuf, uint32_t* portid, int* effective_rcvbuf) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_NETFILTER);
  if (fd < 0) return -errno;
  if (rcvbuf > 0) {
    // SO_RCVBUFFORCE passes net.core.rmem_max (needs CAP_NET_ADMIN); SO_RCVBUF is capped by it.
    if (SetInt(fd, SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf) != 0) SetInt(fd, SOL_SOCKET, SO_RCVBUF, rcvbuf);
  }
  if (groups) {
    // No ENOBUFS errors on overrun: an overrun otherwise also marks the socket congested and every message is
    // dropped until the queue is empty. Each message not queued is still counted in sk_drops.
    if (SetInt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, 1) != 0 ||
        (reliable && SetInt(fd, SOL_NETLINK, NETLINK_BROADCAST_ERROR, 1) != 0)) {
      int err = errno;
      close(fd);
      return -err;
    }
  }
  struct sockaddr_nl addr = {};
  addr.nl_family = AF_NETLINK;
  addr.nl_groups = groups;
  if (bind(fd, (struct sockaddr*)&addr, sizeof(addr)) != 0) {
    int err = errno;
    close(fd);
    return -err;
  }
  socklen_t alen = sizeof(addr);
  if (getsockname(fd, (struct sockaddr*)&addr, &alen) == 0) *portid = addr.nl_pid;
  int v = 0;
  socklen_t vlen = sizeof(v);
  if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, &vlen) == 0) *effective_rcvbuf = v;
  return fd;
}

static uint32_t GroupBit(int group) { return 1u << (group - 1); }

// Dumps the conntrack table (IPCTNL_MSG_CT_GET) or the dying list (IPCTNL_MSG_CT_GET_DYING: entries whose
// DESTROY event still waits for re-delivery) through a request socket; calls on_entry for each entry.
// Returns 0 or an errno.
static int DumpTable(int fd, bool dying, uint32_t netns, uint8_t kind,
                     const std::function<void(const struct ct_event&, uint32_t id)>& on_entry, uint64_t* malformed) {
  static std::atomic<uint32_t> seq_counter{1};
  uint32_t seq = seq_counter.fetch_add(1);
  struct {
    struct nlmsghdr nlh;
    struct nfgenmsg nfg;
  } req = {};
  req.nlh.nlmsg_len = sizeof(req);
  req.nlh.nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | (dying ? IPCTNL_MSG_CT_GET_DYING : IPCTNL_MSG_CT_GET);
  req.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req.nlh.nlmsg_seq = seq;
  req.nfg.nfgen_family = AF_UNSPEC;
  req.nfg.version = NFNETLINK_V0;
  struct sockaddr_nl kernel = {};
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd, &req, sizeof(req), 0, (struct sockaddr*)&kernel, sizeof(kernel)) < 0) return errno;
  std::vector<uint8_t> buf(256 * 1024);
  for (;;) {
    struct pollfd p = {fd, POLLIN, 0};
    int pr = poll(&p, 1, 5000);
    if (pr == 0) return ETIMEDOUT;
    if (pr < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    ssize_t n = recv(fd, buf.data(), buf.size(), 0);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return errno;
    }
    uint64_t mono = NowNs(CLOCK_MONOTONIC), real = NowNs(CLOCK_REALTIME);
    int len = (int)n;
    for (struct nlmsghdr* nlh = (struct nlmsghdr*)buf.data(); NLMSG_OK(nlh, len); nlh = NLMSG_NEXT(nlh, len)) {
      if (nlh->nlmsg_seq != seq) continue;
      if (nlh->nlmsg_type == NLMSG_DONE) return 0;
      if (nlh->nlmsg_type == NLMSG_ERROR) {
        const struct nlmsgerr* err = (const struct nlmsgerr*)NLMSG_DATA(nlh);
        if (err->error) return -err->error;
        continue;
      }
      struct ct_event e;
      uint32_t id = 0;
      Parsed r = ParseCtMessage(nlh, netns, kind, mono, real, &e, &id);
      if (r == Parsed::kEntry) on_entry(e, id);
      else if (r == Parsed::kMalformed && malformed) (*malformed)++;
    }
  }
}

// ---- duplicate suppression ---------------------------------------------------------------------------------------

// Ids (CTA_ID) of recent NEW and DESTROY events of one namespace. Reliable delivery re-sends an event to every
// listener of the group when any reliable listener missed it, so a socket can receive one twice. An id is the
// kernel's hash of the entry's address and tuples: a later entry can only have the same one after this one is
// freed, which for a DESTROY re-send cannot have happened yet (the kernel holds the entry until delivered). A
// missed NEW is re-sent with the entry's next packet: NEW ids count as duplicates for a limited time only.
class RecentIds {
 public:
  RecentIds(size_t cap, uint64_t window_ns) : cap_(cap), window_ns_(window_ns) {}
  bool Has(uint32_t id, uint64_t now_ns) const {
    auto it = ids_.find(id);
    return it != ids_.end() && (!window_ns_ || now_ns - it->second.when < window_ns_);
  }
  void Add(uint32_t id, uint64_t now_ns) {
    ids_[id] = {++seq_, now_ns};
    order_.emplace_back(id, seq_);
    while (ids_.size() > cap_ && !order_.empty()) {
      auto [old, s] = order_.front();
      order_.pop_front();
      auto it = ids_.find(old);
      if (it != ids_.end() && it->second.seq == s) ids_.erase(it);
    }
    if (order_.size() > 4 * cap_) Compact();
  }
  void Remove(uint32_t id) { ids_.erase(id); }

 private:
  struct Seen {
    uint64_t seq, when;
  };
  void Compact() {
    std::deque<std::pair<uint32_t, uint64_t>> kept;
    for (auto& p : order_) {
      auto it = ids_.find(p.first);
      if (it != ids_.end() && it->second.seq == p.second) kept.push_back(p);
    }
    order_.swap(kept);
  }
  size_t cap_;
  uint64_t window_ns_;  // 0: no time limit
  uint64_t seq_ = 0;
  std::unordered_map<uint32_t, Seen> ids_;
  std::deque<std::pair<uint32_t, uint64_t>> order_;
};

// ---- the event monitor -------------------------------------------------------------------------------------------

struct CtBatch {
  uint8_t* data;
  size_t len;
};

struct NetnsWatch;

struct EventSocket {
  NetnsWatch* owner = nullptr;
  int fd = -1;
  uint32_t portid = 0;
  int rcvbuf = 0;
  bool reliable = false;
  uint32_t groups = 0;
  uint32_t final_drops = 0;
  std::atomic<uint64_t> received{0};
};

struct NetnsWatch {
  uint32_t netns = 0;
  EventSocket new_sock, destroy_sock;
  int req_fd = -1;
  std::atomic<bool> remove_requested{false};
  std::atomic<bool> closed{false};
  std::atomic<uint64_t> duplicates{0}, ignored{0}, malformed{0}, truncated{0}, recovered{0}, recv_errors{0};
  std::atomic<int> last_errno{0};
  RecentIds new_ids{65536, 10000000000ull}, destroy_ids{65536, 0};  // worker thread only
};

class Ctnetlink : public Napi::ObjectWrap<Ctnetlink> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Ctnetlink",
                       {
                           InstanceMethod("addNetns", &Ctnetlink::AddNetns),
                           InstanceMethod("removeNetns", &Ctnetlink::RemoveNetns),
                           InstanceMethod("stats", &Ctnetlink::Stats),
                           InstanceMethod("stop", &Ctnetlink::Stop),
                       });
  }

  // new Ctnetlink(onBatch(ArrayBuffer), { newEvents, destroyEvents, reliable, rcvbufBytes, pollMs, batchBytes,
  //               maxQueuedBatches, readDelayUs, stopTimeoutMs })
  explicit Ctnetlink(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Ctnetlink>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsFunction()) {
      Napi::TypeError::New(env, "Ctnetlink(onBatch, options)").ThrowAsJavaScriptException();
      return;
    }
    Napi::Object o = info.Length() > 1 && info[1].IsObject() ? info[1].As<Napi::Object>() : Napi::Object::New(env);
    auto num = [&](const char* k, double d) { return o.Has(k) && o.Get(k).IsNumber() ? o.Get(k).ToNumber().DoubleValue() : d; };
    auto flag = [&](const char* k, bool d) { return o.Has(k) && o.Get(k).IsBoolean() ? o.Get(k).ToBoolean().Value() : d; };
    want_new_ = flag("newEvents", true);
    want_destroy_ = flag("destroyEvents", true);
    reliable_ = flag("reliable", true);
    rcvbuf_ = (int)num("rcvbufBytes", 16 * 1024 * 1024);
    poll_ms_ = (int)num("pollMs", 20);
    batch_cap_ = (size_t)num("batchBytes", 256 * 1024);
    read_delay_us_ = (int)num("readDelayUs", 0);
    stop_timeout_ms_ = (int)num("stopTimeoutMs", 2000);
    size_t max_queue = (size_t)num("maxQueuedBatches", 16);

    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (epoll_fd_ < 0 || wake_fd_ < 0) {
      ThrowErrno(env, "ctnetlink epoll", errno);
      return;
    }
    struct epoll_event ev = {};
    ev.events = EPOLLIN;
    ev.data.ptr = nullptr;  // the wake-up eventfd
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
    napi_value promise;
    napi_create_promise(env, &stopped_deferred_, &promise);
    stopped_promise_ = Napi::Persistent(Napi::Object(env, promise));
    tsfn_ = Napi::ThreadSafeFunction::New(env, info[0].As<Napi::Function>(), "netbpf-ctnetlink", max_queue, 1, this,
                                          &Ctnetlink::Finalize, (void*)nullptr);
    Ref();  // alive until the worker has finished and the final batch was delivered
    worker_ = std::thread(&Ctnetlink::Run, this);
  }

  ~Ctnetlink() {
    for (auto& w : watches_) CloseWatch(*w);
    if (epoll_fd_ >= 0) close(epoll_fd_);
    if (wake_fd_ >= 0) close(wake_fd_);
    free(batch_.data);
  }

 private:
  bool want_new_, want_destroy_, reliable_;
  int rcvbuf_, poll_ms_, read_delay_us_, stop_timeout_ms_;
  size_t batch_cap_;
  int epoll_fd_ = -1, wake_fd_ = -1;
  std::mutex mutex_;  // watches_ (the list and each socket's fd while open)
  std::vector<std::shared_ptr<NetnsWatch>> watches_;
  CtBatch batch_ = {nullptr, 0};
  static const int kMsgs = 32, kSlot = 16384;  // recvmmsg: messages per call, bytes per message (events are < 2 KiB)
  std::vector<uint8_t> rbuf_;                   // worker thread only
  std::thread worker_;
  std::atomic<bool> stop_{false};
  bool finished_ = false;
  Napi::ThreadSafeFunction tsfn_;
  napi_deferred stopped_deferred_ = nullptr;
  Napi::ObjectReference stopped_promise_;

  void Wake() {
    uint64_t one = 1;
    ssize_t r = write(wake_fd_, &one, sizeof(one));
    (void)r;
  }

  // addNetns(path | null) -> { netns, newPortid, destroyPortid, rcvbuf }. path: a network namespace file
  // (/proc/PID/ns/net, /run/netns/NAME); null: this process's namespace. netns: the namespace inode.
  Napi::Value AddNetns(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (stop_.load()) return ThrowErrno(env, "ctnetlink: stopped", EINVAL);
    std::string path = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
    uint32_t inode = 0;
    int ns_fd, open_err = OpenNetns(path, &inode, &ns_fd);
    if (open_err) return ThrowErrno(env, "open network namespace " + NetnsPath(path), open_err);
    auto w = std::make_shared<NetnsWatch>();
    w->netns = inode;
    int err = 0;
    int setns_err = RunInNetns(ns_fd, [&] {
      auto open_sock = [&](EventSocket& s, int group) {
        s.owner = w.get();
        s.reliable = group == NFNLGRP_CONNTRACK_DESTROY && reliable_;
        s.groups = GroupBit(group);
        int fd = OpenCtSocket(s.groups, s.reliable, rcvbuf_, &s.portid, &s.rcvbuf);
        if (fd < 0) err = -fd;
        else s.fd = fd;
      };
      if (want_new_) open_sock(w->new_sock, NFNLGRP_CONNTRACK_NEW);
      if (!err && want_destroy_) open_sock(w->destroy_sock, NFNLGRP_CONNTRACK_DESTROY);
      if (!err) {
        uint32_t portid;
        int rb;
        int fd = OpenCtSocket(0, false, 0, &portid, &rb);
        if (fd < 0) err = -fd;
        else w->req_fd = fd;
      }
    });
    if (ns_fd >= 0) close(ns_fd);
    if (setns_err || err) {
      CloseWatch(*w);
      std::string what = setns_err ? "enter network namespace " + NetnsPath(path) : "ctnetlink socket in " + NetnsPath(path);
      return ThrowErrno(env, what, setns_err ? setns_err : err);
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      watches_.push_back(w);
    }
    for (EventSocket* s : {&w->new_sock, &w->destroy_sock}) {
      if (s->fd < 0) continue;
      struct epoll_event ev = {};
      ev.events = EPOLLIN;
      ev.data.ptr = s;
      epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, s->fd, &ev);
    }
    Napi::Object out = Napi::Object::New(env);
    out.Set("netns", Napi::Number::New(env, w->netns));
    out.Set("newPortid", Napi::Number::New(env, w->new_sock.portid));
    out.Set("destroyPortid", Napi::Number::New(env, w->destroy_sock.portid));
    out.Set("rcvbuf", Napi::Number::New(env, w->destroy_sock.fd >= 0 ? w->destroy_sock.rcvbuf : w->new_sock.rcvbuf));
    return out;
  }

  // removeNetns(netns): the worker drains that namespace's sockets (as at stop) and closes them, which releases
  // the namespace (a socket holds a reference on it). Its counters stay in stats().
  Napi::Value RemoveNetns(const Napi::CallbackInfo& info) {
    uint32_t inode = info[0].ToNumber().Uint32Value();
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& w : watches_)
      if (w->netns == inode && !w->closed.load()) w->remove_requested.store(true);
    Wake();
    return info.Env().Undefined();
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::lock_guard<std::mutex> lock(mutex_);
    Napi::Array arr = Napi::Array::New(env, watches_.size());
    uint32_t i = 0;
    for (auto& w : watches_) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("netns", Napi::Number::New(env, w->netns));
      o.Set("closed", Napi::Boolean::New(env, w->closed.load()));
      auto sock = [&](EventSocket& s) -> Napi::Value {
        if (s.fd < 0 && !s.portid) return env.Null();
        Napi::Object so = Napi::Object::New(env);
        so.Set("portid", Napi::Number::New(env, s.portid));
        so.Set("rcvbuf", Napi::Number::New(env, s.rcvbuf));
        so.Set("reliable", Napi::Boolean::New(env, s.reliable));
        so.Set("received", Napi::Number::New(env, (double)s.received.load()));
        so.Set("drops", Napi::Number::New(env, s.fd >= 0 ? SocketDrops(s.fd) : s.final_drops));
        return so;
      };
      o.Set("new", sock(w->new_sock));
      o.Set("destroy", sock(w->destroy_sock));
      o.Set("duplicates", Napi::Number::New(env, (double)w->duplicates.load()));
      o.Set("ignored", Napi::Number::New(env, (double)w->ignored.load()));
      o.Set("malformed", Napi::Number::New(env, (double)(w->malformed.load() + w->truncated.load())));
      o.Set("recoveredAtStop", Napi::Number::New(env, (double)w->recovered.load()));
      o.Set("recvErrors", Napi::Number::New(env, (double)w->recv_errors.load()));
      int le = w->last_errno.load();
      o.Set("lastError", le ? Napi::String::New(env, strerror(le)) : env.Null());
      arr.Set(i++, o);
    }
    return arr;
  }

  // Stops after a final drain of every namespace (see Drain); resolves once the last batch was delivered.
  Napi::Value Stop(const Napi::CallbackInfo& info) {
    stop_.store(true);
    Wake();
    return stopped_promise_.Value();
  }

  static void Finalize(Napi::Env env, void*, Ctnetlink* self) {
    self->worker_.join();
    self->finished_ = true;
    napi_resolve_deferred(env, self->stopped_deferred_, env.Undefined());
    self->Unref();
  }

  void CloseWatch(NetnsWatch& w) {
    for (EventSocket* s : {&w.new_sock, &w.destroy_sock}) {
      if (s->fd < 0) continue;
      s->final_drops = SocketDrops(s->fd);
      epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, s->fd, nullptr);
      close(s->fd);
      s->fd = -1;
    }
    if (w.req_fd >= 0) close(w.req_fd);
    w.req_fd = -1;
    w.closed.store(true);
  }

  // ---- worker thread ----

  void Append(const struct ct_event& e) {
    const size_t size = sizeof(e), need = 4 + size;
    if (batch_.data && batch_.len + need > batch_cap_) Flush();
    if (!batch_.data) {
      batch_.data = (uint8_t*)malloc(batch_cap_ > need ? batch_cap_ : need);
      if (!batch_.data) return;
    }
    uint32_t len = (uint32_t)size;
    memcpy(batch_.data + batch_.len, &len, 4);
    memcpy(batch_.data + batch_.len + 4, &e, size);
    batch_.len += need;
  }

  // Hands the batch to the JS thread; blocks while JS is behind (bounded queue). Meanwhile the sockets fill:
  // NEW messages are then dropped (counted), DESTROY events wait on the kernel's dying list (reliable mode).
  void Flush() {
    if (!batch_.data || batch_.len == 0) return;
    CtBatch* out = new CtBatch(batch_);
    batch_ = {nullptr, 0};
    if (tsfn_.BlockingCall(out, &Ctnetlink::Deliver) != napi_ok) {
      free(out->data);
      delete out;
    }
  }

  static void Deliver(Napi::Env env, Napi::Function callback, CtBatch* batch) {
    if (env == nullptr) {
      free(batch->data);
      delete batch;
      return;
    }
    Napi::ArrayBuffer buffer =
        Napi::ArrayBuffer::New(env, batch->data, batch->len, [](Napi::Env, void* data) { free(data); });
    delete batch;
    callback.Call({buffer});
  }

  // A parsed event: duplicates (same entry id already seen for this kind) are counted and dropped.
  void OnEvent(NetnsWatch& w, const struct ct_event& e, uint32_t id) {
    if (id) {
      RecentIds& same = e.kind == CT_EVENT_DESTROY ? w.destroy_ids : w.new_ids;
      RecentIds& other = e.kind == CT_EVENT_DESTROY ? w.new_ids : w.destroy_ids;
      uint64_t now = NowNs(CLOCK_MONOTONIC);
      if (same.Has(id, now)) {
        w.duplicates.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      same.Add(id, now);
      other.Remove(id);  // an id may be reused by a later entry once this one is gone
    }
    Append(e);
  }

  // Reads every message queued on one socket (recvmmsg, many per call).
  void ReadSocket(EventSocket& s) {
    if (s.fd < 0) return;
    NetnsWatch& w = *s.owner;
    std::vector<uint8_t>& buf = rbuf_;
    if (buf.empty()) buf.resize((size_t)kMsgs * kSlot);
    struct mmsghdr msgs[kMsgs];
    struct iovec iov[kMsgs];
    for (;;) {
      for (int i = 0; i < kMsgs; i++) {
        iov[i] = {buf.data() + (size_t)i * kSlot, (size_t)kSlot};
        memset(&msgs[i], 0, sizeof(msgs[i]));
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
      }
      int n = recvmmsg(s.fd, msgs, kMsgs, MSG_DONTWAIT, nullptr);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
          w.recv_errors.fetch_add(1, std::memory_order_relaxed);
          w.last_errno.store(errno);
        }
        return;
      }
      uint64_t mono = NowNs(CLOCK_MONOTONIC), real = NowNs(CLOCK_REALTIME);
      for (int i = 0; i < n; i++) {
        if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
          w.truncated.fetch_add(1, std::memory_order_relaxed);
          continue;
        }
        int len = (int)msgs[i].msg_len;
        for (struct nlmsghdr* nlh = (struct nlmsghdr*)iov[i].iov_base; NLMSG_OK(nlh, len); nlh = NLMSG_NEXT(nlh, len)) {
          struct ct_event e;
          uint32_t id = 0;
          Parsed r = ParseCtMessage(nlh, w.netns, 0, mono, real, &e, &id);
          if (r == Parsed::kEntry) {
            s.received.fetch_add(1, std::memory_order_relaxed);
            OnEvent(w, e, id);
          } else if (r == Parsed::kMalformed) {
            w.malformed.fetch_add(1, std::memory_order_relaxed);
          } else {
            w.ignored.fetch_add(1, std::memory_order_relaxed);
          }
        }
      }
      // Test hook: a deliberately slow reader (lets the socket overrun); not while draining at stop.
      if (read_delay_us_ > 0 && n > 0 && !stop_.load() && !w.remove_requested.load())
        usleep((useconds_t)read_delay_us_ * (useconds_t)n);
      if (n < kMsgs) return;
    }
  }

  // Destroy events still owed to this namespace's listeners: entries on the kernel's dying list whose DESTROY
  // this socket has not received. on_unseen gets each (as a CT_EVENT_DESTROY record).
  size_t UnseenDying(NetnsWatch& w, const std::function<void(const struct ct_event&, uint32_t)>& on_unseen) {
    if (w.req_fd < 0) return 0;
    size_t unseen = 0;
    uint64_t malformed = 0;
    int err = DumpTable(w.req_fd, true, w.netns, CT_EVENT_DESTROY, [&](const struct ct_event& e, uint32_t id) {
      if (id && w.destroy_ids.Has(id, 0)) return;
      unseen++;
      if (on_unseen) on_unseen(e, id);
    }, &malformed);
    if (err) w.last_errno.store(err);
    return unseen;
  }

  // Before closing a namespace's sockets: wait (bounded) until the kernel has re-delivered every DESTROY it owes
  // this listener (reliable mode: entries on the dying list), unsubscribe so nothing new is queued, read what is
  // queued, and emit any entry still on the dying list that was not seen (taken from the dying-list dump: the
  // kernel would deliver it to nobody once this listener is gone).
  void Drain(NetnsWatch& w, uint64_t deadline_ns) {
    ReadSocket(w.new_sock);
    ReadSocket(w.destroy_sock);
    if (w.destroy_sock.fd >= 0 && w.destroy_sock.reliable) {
      while (UnseenDying(w, nullptr) > 0 && NowNs(CLOCK_MONOTONIC) < deadline_ns) {
        struct pollfd p = {w.destroy_sock.fd, POLLIN, 0};
        poll(&p, 1, 10);
        ReadSocket(w.destroy_sock);
      }
    }
    for (EventSocket* s : {&w.new_sock, &w.destroy_sock}) {
      if (s->fd < 0) continue;
      for (uint32_t g = 1; g <= 31; g++) {
        if (s->groups & (1u << (g - 1))) SetInt(s->fd, SOL_NETLINK, NETLINK_DROP_MEMBERSHIP, (int)g);
      }
      ReadSocket(*s);
    }
    if (w.destroy_sock.fd >= 0 && w.destroy_sock.reliable) {
      UnseenDying(w, [&](const struct ct_event& e, uint32_t id) {
        w.recovered.fetch_add(1, std::memory_order_relaxed);
        OnEvent(w, e, id);
      });
    }
    std::lock_guard<std::mutex> lock(mutex_);
    CloseWatch(w);
  }

  void Run() {
    struct epoll_event evs[64];
    while (!stop_.load()) {
      int n = epoll_wait(epoll_fd_, evs, 64, poll_ms_);
      for (int i = 0; i < n; i++) {
        if (!evs[i].data.ptr) {
          uint64_t v;
          ssize_t r = read(wake_fd_, &v, sizeof(v));
          (void)r;
          continue;
        }
        ReadSocket(*(EventSocket*)evs[i].data.ptr);
      }
      std::vector<std::shared_ptr<NetnsWatch>> removing;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        for (auto& w : watches_)
          if (w->remove_requested.load() && !w->closed.load()) removing.push_back(w);
      }
      for (auto& w : removing) Drain(*w, NowNs(CLOCK_MONOTONIC) + (uint64_t)stop_timeout_ms_ * 1000000ull);
      Flush();
    }
    std::vector<std::shared_ptr<NetnsWatch>> all;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      all = watches_;
    }
    uint64_t deadline = NowNs(CLOCK_MONOTONIC) + (uint64_t)stop_timeout_ms_ * 1000000ull;
    for (auto& w : all)
      if (!w->closed.load()) Drain(*w, deadline);
    Flush();
    tsfn_.Release();
  }
};

// ---- one-shot dump -----------------------------------------------------------------------------------------------

// ctnetlinkDump(netnsPath | null, dying) -> Promise<ArrayBuffer>: every entry of the conntrack table
// (or of the dying list) of that namespace as CT_EVENT_LISTED records, framed like event batches.
class DumpWorker : public Napi::AsyncWorker {
 public:
  DumpWorker(Napi::Env env, std::string path, bool dying)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), path_(std::move(path)), dying_(dying) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    int ns_fd, open_err = OpenNetns(path_, &netns_, &ns_fd);
    if (open_err) {
      err_ = open_err;
      what_ = "open network namespace " + NetnsPath(path_);
      return;
    }
    int setns_err = RunInNetns(ns_fd, [&] {
      uint32_t portid;
      int rb;
      int fd = OpenCtSocket(0, false, 0, &portid, &rb);
      if (fd < 0) {
        err_ = -fd;
        what_ = "ctnetlink socket";
        return;
      }
      uint64_t malformed = 0;
      int err = DumpTable(fd, dying_, netns_, CT_EVENT_LISTED, [&](const struct ct_event& e, uint32_t) {
        uint32_t len = sizeof(e);
        const uint8_t* p = (const uint8_t*)&len;
        out_.insert(out_.end(), p, p + 4);
        p = (const uint8_t*)&e;
        out_.insert(out_.end(), p, p + sizeof(e));
      }, &malformed);
      if (err) {
        err_ = err;
        what_ = "ctnetlink dump";
      }
      close(fd);
    });
    if (ns_fd >= 0) close(ns_fd);
    if (setns_err) {
      err_ = setns_err;
      what_ = "enter network namespace " + NetnsPath(path_);
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (err_) {
      char buf[128];
      snprintf(buf, sizeof(buf), "%s", strerror(err_));
      Napi::Error error = Napi::Error::New(env, what_ + ": " + buf);
      error.Set("errno", Napi::Number::New(env, err_));
      deferred_.Reject(error.Value());
      return;
    }
    Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(env, out_.size());
    if (!out_.empty()) memcpy(buffer.Data(), out_.data(), out_.size());
    deferred_.Resolve(buffer);
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::string path_;
  uint32_t netns_ = 0;
  bool dying_;
  int err_ = 0;
  std::string what_;
  std::vector<uint8_t> out_;
};

static Napi::Value CtnetlinkDump(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  bool dying = info.Length() > 1 && info[1].ToBoolean().Value();
  DumpWorker* w = new DumpWorker(env, path, dying);
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// netnsReadFiles(netnsPath | null, paths[]) -> Array<string | null>: reads files as a thread inside that network
// namespace sees them (/proc/thread-self/net/..., /proc/sys/net/...: per-namespace kernel state). null: unreadable.
static Napi::Value NetnsReadFiles(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  if (info.Length() < 2 || !info[1].IsArray()) {
    Napi::TypeError::New(env, "netnsReadFiles(netnsPath | null, paths)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Array files = info[1].As<Napi::Array>();
  std::vector<std::string> names;
  for (uint32_t i = 0; i < files.Length(); i++) names.push_back(files.Get(i).ToString().Utf8Value());
  std::vector<std::string> contents(names.size());
  std::vector<bool> ok(names.size(), false);
  uint32_t inode;
  int ns_fd, open_err = OpenNetns(path, &inode, &ns_fd);
  if (open_err) return ThrowErrno(env, "open network namespace " + NetnsPath(path), open_err);
  int err = RunInNetns(ns_fd, [&] {
    for (size_t i = 0; i < names.size(); i++) {
      int fd = open(names[i].c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) continue;
      char buf[8192];
      ssize_t n;
      while ((n = read(fd, buf, sizeof(buf))) > 0) contents[i].append(buf, (size_t)n);
      ok[i] = n == 0;
      close(fd);
    }
  });
  if (ns_fd >= 0) close(ns_fd);
  if (err) return ThrowErrno(env, "enter network namespace " + NetnsPath(path), err);
  Napi::Array out = Napi::Array::New(env, names.size());
  for (size_t i = 0; i < names.size(); i++)
    out.Set((uint32_t)i, ok[i] ? Napi::Value(Napi::String::New(env, contents[i])) : env.Null());
  return out;
}

// netnsWriteFile(netnsPath | null, path, text): writes a file as a thread inside that namespace (a per-namespace
// sysctl such as /proc/sys/net/netfilter/nf_conntrack_acct).
static Napi::Value NetnsWriteFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  if (info.Length() < 3 || !info[1].IsString() || !info[2].IsString()) {
    Napi::TypeError::New(env, "netnsWriteFile(netnsPath | null, path, text)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string file = info[1].As<Napi::String>().Utf8Value(), text = info[2].As<Napi::String>().Utf8Value();
  uint32_t inode;
  int ns_fd, open_err = OpenNetns(path, &inode, &ns_fd);
  if (open_err) return ThrowErrno(env, "open network namespace " + NetnsPath(path), open_err);
  int write_err = 0;
  int err = RunInNetns(ns_fd, [&] {
    int fd = open(file.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
      write_err = errno;
      return;
    }
    if (write(fd, text.data(), text.size()) != (ssize_t)text.size()) write_err = errno ? errno : EIO;
    close(fd);
  });
  if (ns_fd >= 0) close(ns_fd);
  if (err) return ThrowErrno(env, "enter network namespace " + NetnsPath(path), err);
  if (write_err) return ThrowErrno(env, "write " + file + " in " + NetnsPath(path), write_err);
  return env.Undefined();
}

Napi::Object InitCtnetlink(Napi::Env env, Napi::Object exports) {
  exports.Set("netnsWriteFile", Napi::Function::New(env, NetnsWriteFile));
  exports.Set("Ctnetlink", Ctnetlink::Define(env));
  exports.Set("ctnetlinkDump", Napi::Function::New(env, CtnetlinkDump));
  exports.Set("netnsReadFiles", Napi::Function::New(env, NetnsReadFiles));
  return exports;
}

}  // namespace netbpf
