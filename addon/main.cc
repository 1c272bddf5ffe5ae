// netbpf addon entry point: a thin, generic bridge to libbpf. It knows nothing about TCP.
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mutex>

#include "common.h"

namespace netbpf {

static std::mutex log_mutex;
static std::string log_buffer;
static bool log_debug = false;

static int LibbpfPrint(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (log_debug) {
    va_list copy;
    va_copy(copy, args);
    vfprintf(stderr, fmt, copy);
    va_end(copy);
  }
  if (level == LIBBPF_DEBUG) return 0;
  // libbpf prints a whole verifier log as one message: format it at its full length.
  va_list copy;
  va_copy(copy, args);
  int n = vsnprintf(nullptr, 0, fmt, copy);
  va_end(copy);
  if (n <= 0) return 0;
  std::string line((size_t)n + 1, '\0');
  vsnprintf(&line[0], line.size(), fmt, args);
  line.resize((size_t)n);
  std::lock_guard<std::mutex> lock(log_mutex);
  // Bounded: a verifier log can be huge; keep the tail, which names the failing instruction.
  log_buffer.append(line);
  if (log_buffer.size() > 65536) log_buffer.erase(0, log_buffer.size() - 65536);
  return 0;
}

void InstallLibbpfLogger() {
  const char* debug = getenv("NETBPF_DEBUG");
  log_debug = debug && *debug && strcmp(debug, "0") != 0;
  libbpf_set_print(LibbpfPrint);
}

std::string TakeLibbpfLog() {
  std::lock_guard<std::mutex> lock(log_mutex);
  std::string out;
  out.swap(log_buffer);
  return out;
}

static const char* ErrnoName(int err) {
  switch (err) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case EINVAL: return "EINVAL";
    case EACCES: return "EACCES";
    case ENOMEM: return "ENOMEM";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case E2BIG: return "E2BIG";
    case ENOSPC: return "ENOSPC";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case 524: return "ENOTSUPP";  // kernel-internal: operation not supported by this kernel
    case ENODATA: return "ENODATA";
    case EBADF: return "EBADF";
    case ENOEXEC: return "ENOEXEC";
    case EAGAIN: return "EAGAIN";
    case EINTR: return "EINTR";
    case ENXIO: return "ENXIO";
    case ENOSYS: return "ENOSYS";
    case EFAULT: return "EFAULT";
    default: return "E?";
  }
}

Napi::Value ThrowErrno(Napi::Env env, const std::string& what, int err) {
  if (err < 0) err = -err;
  char buf[256];
  libbpf_strerror(err, buf, sizeof(buf));
  Napi::Error error = Napi::Error::New(env, what + ": " + buf);
  error.Set("errno", Napi::Number::New(env, err));
  error.Set("code", Napi::String::New(env, ErrnoName(err)));
  error.Set("libbpfLog", Napi::String::New(env, TakeLibbpfLog()));
  error.ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  InstallLibbpfLogger();
  exports.Set("libbpfVersion", Napi::String::New(env, libbpf_version_string()));
  exports.Set("libbpfLink", Napi::String::New(env, NETBPF_LIBBPF_LINK));
  exports.Set("numPossibleCpus", Napi::Number::New(env, libbpf_num_possible_cpus()));
  InitBpfObject(env, exports);
  InitRingBuffer(env, exports);
  InitKernelBtf(env, exports);
  InitCtnetlink(env, exports);
  InitSockDiag(env, exports);
  return exports;
}

}  // namespace netbpf

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return netbpf::Init(env, exports); }

NODE_API_MODULE(netbpf, InitAddon)
