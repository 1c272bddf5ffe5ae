// Reads the running kernel's BTF: which types exist (to choose hooks) and enum names (drop reasons,
// TCP states) so names come from this kernel, not from a table compiled into netbpf.
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <string.h>

#include <string>

#include "common.h"

namespace netbpf {

static btf* vmlinux_btf = nullptr;

static btf* KernelBtf(Napi::Env env) {
  if (vmlinux_btf) return vmlinux_btf;
  btf* b = btf__load_vmlinux_btf();
  int err = libbpf_get_error(b);
  if (err) {
    ThrowErrno(env, "load kernel BTF (/sys/kernel/btf/vmlinux)", err);
    return nullptr;
  }
  vmlinux_btf = b;
  return b;
}

// Whether a loaded module's BTF (/sys/kernel/btf/<module>, split on top of vmlinux) has function `name`:
// functions of modules (nf_conntrack's __nf_conntrack_confirm) can be fentry/fexit targets too. Read on
// each call, not cached: modules load and unload while netbpf runs.
static bool ModuleBtfHasFunc(btf* vmlinux, const std::string& name) {
  DIR* dir = opendir("/sys/kernel/btf");
  if (!dir) return false;
  bool found = false;
  while (dirent* d = readdir(dir)) {
    if (d->d_name[0] == '.' || strcmp(d->d_name, "vmlinux") == 0) continue;
    std::string path = std::string("/sys/kernel/btf/") + d->d_name;
    btf* m = btf__parse_split(path.c_str(), vmlinux);
    if (libbpf_get_error(m)) continue;
    found = btf__find_by_name_kind(m, name.c_str(), BTF_KIND_FUNC) > 0;
    btf__free(m);
    if (found) break;
  }
  closedir(dir);
  return found;
}

bool ModuleBtfIdsReadable() {
  static int readable = -1;
  if (readable < 0) {
    __u32 next = 0;
    readable = !(bpf_btf_get_next_id(0, &next) != 0 && errno == EPERM);
  }
  return readable != 0;
}

static int KindByName(const std::string& kind) {
  if (kind == "struct") return BTF_KIND_STRUCT;
  if (kind == "union") return BTF_KIND_UNION;
  if (kind == "enum") return BTF_KIND_ENUM;
  if (kind == "typedef") return BTF_KIND_TYPEDEF;
  if (kind == "func") return BTF_KIND_FUNC;
  return -1;
}

// kernelBtfHas(kind, name, modules = true): whether the running kernel's BTF has that type or function
// (functions: also in loaded modules' BTF, unless modules is false).
static Napi::Value KernelBtfHas(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  btf* b = KernelBtf(env);
  if (!b) return env.Undefined();
  int kind = KindByName(info[0].ToString());
  if (kind < 0) return ThrowErrno(env, "unknown BTF kind " + std::string(info[0].ToString()), EINVAL);
  std::string name = info[1].ToString();
  int id = btf__find_by_name_kind(b, name.c_str(), kind);
  if (id < 0 && kind == BTF_KIND_ENUM) id = btf__find_by_name_kind(b, name.c_str(), BTF_KIND_ENUM64);
  bool modules = info.Length() < 3 || info[2].ToBoolean();
  return Napi::Boolean::New(env, id > 0 || (kind == BTF_KIND_FUNC && modules && ModuleBtfHasFunc(b, name)));
}

// moduleBtfIdsReadable(): whether module BTF can be found by id here (fentry/fexit on a module's function needs it).
static Napi::Value ModuleBtfIdsReadableJs(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), ModuleBtfIdsReadable());
}

// kernelBtfEnum(name): [[name, value], ...] of a kernel enum, or null when the kernel has no such enum.
static Napi::Value KernelBtfEnum(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  btf* b = KernelBtf(env);
  if (!b) return env.Undefined();
  std::string name = info[0].ToString();
  int id = btf__find_by_name_kind(b, name.c_str(), BTF_KIND_ENUM);
  if (id < 0) return env.Null();
  const btf_type* t = btf__type_by_id(b, id);
  const struct btf_enum* e = btf_enum(t);
  Napi::Array out = Napi::Array::New(env, btf_vlen(t));
  for (int i = 0; i < btf_vlen(t); i++, e++) {
    Napi::Array pair = Napi::Array::New(env, 2);
    pair.Set(0u, btf__name_by_offset(b, e->name_off));
    pair.Set(1u, Napi::Number::New(env, btf_kflag(t) ? (double)(uint32_t)e->val : (double)e->val));
    out.Set(i, pair);
  }
  return out;
}

Napi::Object InitKernelBtf(Napi::Env env, Napi::Object exports) {
  exports.Set("kernelBtfHas", Napi::Function::New(env, KernelBtfHas));
  exports.Set("moduleBtfIdsReadable", Napi::Function::New(env, ModuleBtfIdsReadableJs));
  exports.Set("kernelBtfEnum", Napi::Function::New(env, KernelBtfEnum));
  return exports;
}

}  // namespace netbpf
