// BpfObject: one libbpf bpf_object and the links of its programs, owned together and freed together
// on close() or garbage collection.
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "common.h"

namespace netbpf {

// Blocks asynchronous signals on the calling thread for its lifetime (synchronous faults stay deliverable).
class SignalsHeld {
 public:
  SignalsHeld() {
    sigset_t all;
    sigfillset(&all);
    for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP}) sigdelset(&all, sig);
    pthread_sigmask(SIG_BLOCK, &all, &saved_);
  }
  ~SignalsHeld() { pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }
  SignalsHeld(const SignalsHeld&) = delete;
  SignalsHeld& operator=(const SignalsHeld&) = delete;

 private:
  sigset_t saved_;
};

class BpfObject : public Napi::ObjectWrap<BpfObject> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "BpfObject",
                       {
                           InstanceMethod("programs", &BpfObject::Programs),
                           InstanceMethod("maps", &BpfObject::Maps),
                           InstanceMethod("setAutoload", &BpfObject::SetAutoload),
                           InstanceMethod("constants", &BpfObject::Constants),
                           InstanceMethod("setConst", &BpfObject::SetConst),
                           InstanceMethod("setMapMaxEntries", &BpfObject::SetMapMaxEntries),
                           InstanceMethod("setMapFlags", &BpfObject::SetMapFlags),
                           InstanceMethod("load", &BpfObject::Load),
                           InstanceMethod("attach", &BpfObject::Attach),
                           InstanceMethod("setProgramType", &BpfObject::SetProgramType),
                           InstanceMethod("attachNetfilter", &BpfObject::AttachNetfilter),
                           InstanceMethod("detach", &BpfObject::Detach),
                          InstanceMethod("readIter", &BpfObject::ReadIter),
                           InstanceMethod("detachAll", &BpfObject::DetachAll),
                           InstanceMethod("programInfo", &BpfObject::ProgramInfo),
                           InstanceMethod("mapFd", &BpfObject::MapFd),
                           InstanceMethod("mapFdDup", &BpfObject::MapFdDup),
                           InstanceMethod("reuseMapFd", &BpfObject::ReuseMapFd),
                           InstanceMethod("mapLookup", &BpfObject::MapLookup),
                           InstanceMethod("mapUpdate", &BpfObject::MapUpdate),
                           InstanceMethod("mapDelete", &BpfObject::MapDelete),
                           InstanceMethod("mapDump", &BpfObject::MapDump),
                           InstanceMethod("close", &BpfObject::Close),
                       });
  }

  explicit BpfObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BpfObject>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) {
      Napi::TypeError::New(env, "BpfObject(path): path must be a string").ThrowAsJavaScriptException();
      return;
    }
    std::string path = info[0].As<Napi::String>();
    TakeLibbpfLog();
    // libbpf (1.1) looks for CO-RE candidates in every module's BTF too, found by id: where the kernel lets only
    // CAP_SYS_ADMIN iterate BTF ids (6.1), a process with CAP_BPF and CAP_PERFMON then fails every load with EPERM.
    // There, relocate against vmlinux's BTF alone (the file is world-readable); module functions stay unreachable
    // and their hooks say so (hooks.ts).
    LIBBPF_OPTS(bpf_object_open_opts, opts);
    if (!ModuleBtfIdsReadable() && access("/sys/kernel/btf/vmlinux", R_OK) == 0) opts.btf_custom_path = "/sys/kernel/btf/vmlinux";
    obj_ = bpf_object__open_file(path.c_str(), &opts);
    int err = libbpf_get_error(obj_);
    if (err) {
      obj_ = nullptr;
      ThrowErrno(env, "open BPF object " + path, err);
    }
  }

  ~BpfObject() { Destroy(); }

 private:
  bpf_object* obj_ = nullptr;
  bool loaded_ = false;
  std::vector<bpf_link*> links_;
  // Links libbpf cannot create itself (its version predates the hook), made with BPF_LINK_CREATE:
  // handle -> link fd. Handles share one numbering with links_ (links_ holds nullptr at these).
  std::vector<std::pair<uint32_t, int>> raw_links_;

  void DestroyLinks() {
    for (bpf_link*& link : links_) {
      if (link) bpf_link__destroy(link);
      link = nullptr;
    }
    links_.clear();
    for (auto& [handle, fd] : raw_links_) close(fd);
    raw_links_.clear();
  }

  void Destroy() {
    DestroyLinks();
    if (obj_) bpf_object__close(obj_);
    obj_ = nullptr;
  }

  // Detaches every program but keeps maps readable: stop producing, then drain and read counters.
  Napi::Value DetachAll(const Napi::CallbackInfo& info) {
    DestroyLinks();
    return info.Env().Undefined();
  }

  bool CheckOpen(Napi::Env env) {
    if (obj_) return true;
    Napi::Error::New(env, "BPF object is closed").ThrowAsJavaScriptException();
    return false;
  }

  bpf_program* FindProgram(Napi::Env env, const Napi::Value& name) {
    if (!CheckOpen(env)) return nullptr;
    std::string n = name.ToString();
    bpf_program* prog = bpf_object__find_program_by_name(obj_, n.c_str());
    if (!prog) ThrowErrno(env, "no BPF program named " + n, ENOENT);
    return prog;
  }

  bpf_map* FindMap(Napi::Env env, const Napi::Value& name) {
    if (!CheckOpen(env)) return nullptr;
    std::string n = name.ToString();
    bpf_map* map = bpf_object__find_map_by_name(obj_, n.c_str());
    if (!map) ThrowErrno(env, "no BPF map named " + n, ENOENT);
    return map;
  }

  bpf_map* RodataMap() {
    bpf_map* map;
    bpf_object__for_each_map(map, obj_) {
      const char* name = bpf_map__name(map);
      size_t len = strlen(name);
      if (bpf_map__is_internal(map) && len >= 7 && strcmp(name + len - 7, ".rodata") == 0) return map;
    }
    return nullptr;
  }

  // Value size as user space sees it: per-CPU maps return one 8-byte-aligned slot per possible CPU.
  static size_t UserValueSize(bpf_map* map) {
    size_t size = bpf_map__value_size(map);
    switch (bpf_map__type(map)) {
      case BPF_MAP_TYPE_PERCPU_ARRAY:
      case BPF_MAP_TYPE_PERCPU_HASH:
      case BPF_MAP_TYPE_LRU_PERCPU_HASH:
        return ((size + 7) / 8) * 8 * libbpf_num_possible_cpus();
      default:
        return size;
    }
  }

  Napi::Value Programs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!CheckOpen(env)) return env.Undefined();
    Napi::Array out = Napi::Array::New(env);
    bpf_program* prog;
    uint32_t i = 0;
    bpf_object__for_each_program(prog, obj_) {
      Napi::Object p = Napi::Object::New(env);
      p.Set("name", bpf_program__name(prog));
      p.Set("section", bpf_program__section_name(prog));
      p.Set("autoload", bpf_program__autoload(prog));
      out.Set(i++, p);
    }
    return out;
  }

  Napi::Value Maps(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!CheckOpen(env)) return env.Undefined();
    Napi::Array out = Napi::Array::New(env);
    bpf_map* map;
    uint32_t i = 0;
    bpf_object__for_each_map(map, obj_) {
      Napi::Object m = Napi::Object::New(env);
      m.Set("name", bpf_map__name(map));
      m.Set("type", libbpf_bpf_map_type_str(bpf_map__type(map)));
      m.Set("keySize", bpf_map__key_size(map));
      m.Set("valueSize", bpf_map__value_size(map));
      m.Set("maxEntries", bpf_map__max_entries(map));
      out.Set(i++, m);
    }
    return out;
  }

  Napi::Value SetAutoload(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bpf_program* prog = FindProgram(env, info[0]);
    if (!prog) return env.Undefined();
    int err = bpf_program__set_autoload(prog, info[1].ToBoolean());
    if (err) return ThrowErrno(env, "set autoload", err);
    return env.Undefined();
  }

  // The read-only globals (`const volatile` in the BPF program) with their offsets and sizes, from the
  // object's own BTF: user space sets filters by name without knowing the layout of .rodata.
  Napi::Value Constants(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!CheckOpen(env)) return env.Undefined();
    Napi::Object out = Napi::Object::New(env);
    btf* btf = bpf_object__btf(obj_);
    if (!btf) return out;
    int sec_id = btf__find_by_name_kind(btf, ".rodata", BTF_KIND_DATASEC);
    if (sec_id < 0) return out;
    const btf_type* sec = btf__type_by_id(btf, sec_id);
    const btf_var_secinfo* vsi = btf_var_secinfos(sec);
    for (int i = 0; i < btf_vlen(sec); i++, vsi++) {
      const btf_type* var = btf__type_by_id(btf, vsi->type);
      Napi::Object c = Napi::Object::New(env);
      c.Set("offset", vsi->offset);
      c.Set("size", vsi->size);
      out.Set(btf__name_by_offset(btf, var->name_off), c);
    }
    return out;
  }

  Napi::Value SetConst(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!CheckOpen(env)) return env.Undefined();
    if (loaded_) return ThrowErrno(env, "set constant after load", EBUSY);
    std::string name = info[0].ToString();
    if (!info[1].IsBuffer()) {
      Napi::TypeError::New(env, "setConst(name, value): value must be a Buffer").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::Buffer<uint8_t> value = info[1].As<Napi::Buffer<uint8_t>>();
    bpf_map* rodata = RodataMap();
    btf* btf = bpf_object__btf(obj_);
    int sec_id = btf ? btf__find_by_name_kind(btf, ".rodata", BTF_KIND_DATASEC) : -1;
    if (!rodata || sec_id < 0) return ThrowErrno(env, "no read-only globals in this object", ENOENT);
    size_t rodata_size = 0;
    uint8_t* data = (uint8_t*)bpf_map__initial_value(rodata, &rodata_size);
    const btf_type* sec = btf__type_by_id(btf, sec_id);
    const btf_var_secinfo* vsi = btf_var_secinfos(sec);
    for (int i = 0; i < btf_vlen(sec); i++, vsi++) {
      const btf_type* var = btf__type_by_id(btf, vsi->type);
      if (name != btf__name_by_offset(btf, var->name_off)) continue;
      if (value.Length() != vsi->size || vsi->offset + vsi->size > rodata_size) {
        return ThrowErrno(env, "constant " + name + " has size " + std::to_string(vsi->size) + ", got " +
                                   std::to_string(value.Length()),
                          EINVAL);
      }
      memcpy(data + vsi->offset, value.Data(), value.Length());
      return env.Undefined();
    }
    return ThrowErrno(env, "no read-only global named " + name, ENOENT);
  }

  Napi::Value SetMapMaxEntries(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bpf_map* map = FindMap(env, info[0]);
    if (!map) return env.Undefined();
    int err = bpf_map__set_max_entries(map, info[1].ToNumber().Uint32Value());
    if (err) return ThrowErrno(env, "set max entries", err);
    return env.Undefined();
  }

  Napi::Value SetMapFlags(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bpf_map* map = FindMap(env, info[0]);
    if (!map) return env.Undefined();
    int err = bpf_map__set_map_flags(map, info[1].ToNumber().Uint32Value());
    if (err) return ThrowErrno(env, "set map flags", err);
    return env.Undefined();
  }

  Napi::Value Load(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!CheckOpen(env)) return env.Undefined();
    TakeLibbpfLog();
    int err;
    {
      // The verifier gives up with EAGAIN when a signal is pending on the loading thread, and a sampling profiler
      // (node --cpu-prof: SIGPROF every millisecond) or a timer signal arrives more often than a large program
      // verifies, past libbpf's few retries. Held back on this thread while loading, they are taken right after;
      // process-wide signals (SIGINT, SIGTERM) go to another thread meanwhile.
      SignalsHeld held;
      err = bpf_object__load(obj_);
    }
    if (err) return ThrowErrno(env, "load BPF object", err);
    loaded_ = true;
    return env.Undefined();
  }

  // Attaches a program at the hook its SEC() names; returns a handle for detach().
  Napi::Value Attach(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bpf_program* prog = FindProgram(env, info[0]);
    if (!prog) return env.Undefined();
    TakeLibbpfLog();
    bpf_link* link = bpf_program__attach(prog);
    int err = libbpf_get_error(link);
    if (err) return ThrowErrno(env, std::string("attach ") + bpf_program__name(prog), err);
    links_.push_back(link);
    return Napi::Number::New(env, links_.size() - 1);
  }

  // Program type and expected attach type by number, for sections this libbpf does not know (numbers come
  // from the kernel's BTF, e.g. enum bpf_prog_type BPF_PROG_TYPE_NETFILTER). Before load only.
  Napi::Value SetProgramType(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bpf_program* prog = FindProgram(env, info[0]);
    if (!prog) return env.Undefined();
    if (loaded_) return ThrowErrno(env, "set program type after load", EBUSY);
    int err = bpf_program__set_type(prog, (bpf_prog_type)info[1].ToNumber().Uint32Value());
    if (!err && info.Length() > 2)
      err = bpf_program__set_expected_attach_type(prog, (bpf_attach_type)info[2].ToNumber().Uint32Value());
    if (err) return ThrowErrno(env, "set program type", err);
    return env.Undefined();
  }

  // Attaches a BPF_PROG_TYPE_NETFILTER program to a netfilter hook of the caller's network namespace:
  // attachNetfilter(program, {attachType, pf, hooknum, priority, flags}) -> handle for detach(). Uses
  // BPF_LINK_CREATE directly (kernel >= 6.4), as libbpf only learned bpf_program__attach_netfilter in 1.3.
  Napi::Value AttachNetfilter(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bpf_program* prog = FindProgram(env, info[0]);
    if (!prog) return env.Undefined();
    if (!info[1].IsObject()) {
      Napi::TypeError::New(env, "attachNetfilter(program, {attachType, pf, hooknum, priority, flags})").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::Object o = info[1].As<Napi::Object>();
    int prog_fd = bpf_program__fd(prog);
    if (prog_fd < 0) return ThrowErrno(env, "program not loaded", EBADF);
    // union bpf_attr's link_create member as of Linux 6.4 (the installed uapi header may predate it).
    struct {
      uint32_t prog_fd, target_fd, attach_type, flags;
      uint32_t pf, hooknum;
      int32_t priority;
      uint32_t nf_flags;
      uint64_t unused[4];
    } attr = {};
    attr.prog_fd = prog_fd;
    attr.attach_type = o.Get("attachType").ToNumber().Uint32Value();
    attr.pf = o.Get("pf").ToNumber().Uint32Value();
    attr.hooknum = o.Get("hooknum").ToNumber().Uint32Value();
    attr.priority = o.Get("priority").ToNumber().Int32Value();
    attr.nf_flags = o.Has("flags") ? o.Get("flags").ToNumber().Uint32Value() : 0;
    int fd = (int)syscall(__NR_bpf, 28 /* BPF_LINK_CREATE */, &attr, sizeof(attr));
    if (fd < 0)
      return ThrowErrno(env, std::string("attach ") + bpf_program__name(prog) + " to netfilter hook " +
                                 std::to_string(attr.hooknum) + " (pf " + std::to_string(attr.pf) + ")",
                        errno);
    links_.push_back(nullptr);
    uint32_t handle = links_.size() - 1;
    raw_links_.emplace_back(handle, fd);
    return Napi::Number::New(env, handle);
  }

  // Runs an attached BPF iterator once (iter/task_file, iter/tcp, ...): everything its program wrote with
  // bpf_seq_write, as one Buffer. readIter(handle from attach(), maxBytes) -> Buffer; stops at maxBytes.
  Napi::Value ReadIter(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t handle = info[0].ToNumber().Uint32Value();
    size_t max = info.Length() > 1 ? (size_t)info[1].ToNumber().Int64Value() : (size_t)64 << 20;
    if (handle >= links_.size() || !links_[handle]) return ThrowErrno(env, "read iterator: no such link", EBADF);
    int fd = bpf_iter_create(bpf_link__fd(links_[handle]));
    if (fd < 0) return ThrowErrno(env, "create iterator", errno);
    std::vector<uint8_t> out;
    uint8_t buf[65536];
    for (;;) {
      ssize_t n = read(fd, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        int e = errno;
        close(fd);
        return ThrowErrno(env, "read iterator", e);
      }
      if (n == 0) break;
      out.insert(out.end(), buf, buf + n);
      if (out.size() >= max) break;
    }
    close(fd);
    return Napi::Buffer<uint8_t>::Copy(env, out.data(), out.size());
  }

  Napi::Value Detach(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t handle = info[0].ToNumber().Uint32Value();
    for (auto it = raw_links_.begin(); it != raw_links_.end(); ++it) {
      if (it->first == handle) {
        close(it->second);
        raw_links_.erase(it);
        break;
      }
    }
    if (handle < links_.size() && links_[handle]) {
      bpf_link__destroy(links_[handle]);
      links_[handle] = nullptr;
    }
    return env.Undefined();
  }

  // Kernel-side statistics of a loaded program: recursion misses are events lost before the program ran.
  Napi::Value ProgramInfo(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bpf_program* prog = FindProgram(env, info[0]);
    if (!prog) return env.Undefined();
    int fd = bpf_program__fd(prog);
    if (fd < 0) return ThrowErrno(env, "program not loaded", EBADF);
    bpf_prog_info pinfo = {};
    uint32_t len = sizeof(pinfo);
    int err = bpf_obj_get_info_by_fd(fd, &pinfo, &len);
    if (err) return ThrowErrno(env, "get program info", errno);
    Napi::Object out = Napi::Object::New(env);
    out.Set("id", pinfo.id);
    out.Set("runCount", Napi::Number::New(env, (double)pinfo.run_cnt));
    out.Set("runTimeNs", Napi::Number::New(env, (double)pinfo.run_time_ns));
    out.Set("recursionMisses", Napi::Number::New(env, (double)pinfo.recursion_misses));
    return out;
  }

  Napi::Value MapFd(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bpf_map* map = FindMap(env, info[0]);
    if (!map) return env.Undefined();
    return Napi::Number::New(env, bpf_map__fd(map));
  }

  // A duplicate of a loaded map's fd that the caller owns (and closes): it keeps the map alive after this object
  // closes, so another object can reuse it (reuseMapFd) however long the first one lives.
  Napi::Value MapFdDup(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bpf_map* map = FindMap(env, info[0]);
    if (!map) return env.Undefined();
    int fd = bpf_map__fd(map);
    if (fd < 0) return ThrowErrno(env, std::string("map ") + bpf_map__name(map) + " not loaded", EBADF);
    int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0) return ThrowErrno(env, std::string("duplicate fd of map ") + bpf_map__name(map), errno);
    return Napi::Number::New(env, dup_fd);
  }

  // Before load: this object's map `name` is the existing map behind `fd` (shared between objects; libbpf checks
  // that type, key, value and size agree at load, and keeps its own duplicate of the fd).
  Napi::Value ReuseMapFd(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bpf_map* map = FindMap(env, info[0]);
    if (!map) return env.Undefined();
    if (loaded_) return ThrowErrno(env, "reuse a map fd after load", EBUSY);
    int err = bpf_map__reuse_fd(map, info[1].ToNumber().Int32Value());
    if (err) return ThrowErrno(env, std::string("reuse fd for map ") + bpf_map__name(map), -err);
    return env.Undefined();
  }

  bool CheckKey(Napi::Env env, bpf_map* map, const Napi::Value& key) {
    if (key.IsBuffer() && key.As<Napi::Buffer<uint8_t>>().Length() == bpf_map__key_size(map)) return true;
    ThrowErrno(env, std::string("key for map ") + bpf_map__name(map) + " must be a Buffer of " +
                        std::to_string(bpf_map__key_size(map)) + " bytes",
               EINVAL);
    return false;
  }

  Napi::Value MapLookup(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bpf_map* map = FindMap(env, info[0]);
    if (!map || !CheckKey(env, map, info[1])) return env.Undefined();
    Napi::Buffer<uint8_t> key = info[1].As<Napi::Buffer<uint8_t>>();
    Napi::Buffer<uint8_t> value = Napi::Buffer<uint8_t>::New(env, UserValueSize(map));
    if (bpf_map_lookup_elem(bpf_map__fd(map), key.Data(), value.Data())) {
      if (errno == ENOENT) return env.Null();
      return ThrowErrno(env, std::string("lookup in map ") + bpf_map__name(map), errno);
    }
    return value;
  }

  Napi::Value MapUpdate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bpf_map* map = FindMap(env, info[0]);
    if (!map || !CheckKey(env, map, info[1])) return env.Undefined();
    if (!info[2].IsBuffer() || info[2].As<Napi::Buffer<uint8_t>>().Length() != UserValueSize(map))
      return ThrowErrno(env, std::string("value for map ") + bpf_map__name(map) + " has the wrong size", EINVAL);
    uint64_t flags = info.Length() > 3 ? (uint64_t)info[3].ToNumber().Int64Value() : (uint64_t)BPF_ANY;
    if (bpf_map_update_elem(bpf_map__fd(map), info[1].As<Napi::Buffer<uint8_t>>().Data(),
                            info[2].As<Napi::Buffer<uint8_t>>().Data(), flags))
      return ThrowErrno(env, std::string("update map ") + bpf_map__name(map), errno);
    return env.Undefined();
  }

  Napi::Value MapDelete(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bpf_map* map = FindMap(env, info[0]);
    if (!map || !CheckKey(env, map, info[1])) return env.Undefined();
    if (bpf_map_delete_elem(bpf_map__fd(map), info[1].As<Napi::Buffer<uint8_t>>().Data())) {
      if (errno == ENOENT) return Napi::Boolean::New(env, false);
      return ThrowErrno(env, std::string("delete from map ") + bpf_map__name(map), errno);
    }
    return Napi::Boolean::New(env, true);
  }

  // All entries of a map as two packed buffers (keys, values): one crossing for the whole map. Read with
  // BPF_MAP_LOOKUP_BATCH (Linux >= 5.6: a few syscalls for the whole map), else key by key.
  Napi::Value MapDump(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bpf_map* map = FindMap(env, info[0]);
    if (!map) return env.Undefined();
    int fd = bpf_map__fd(map);
    size_t ksize = bpf_map__key_size(map), vsize = UserValueSize(map);
    uint32_t limit = info.Length() > 1 ? info[1].ToNumber().Uint32Value() : bpf_map__max_entries(map);
    std::vector<uint8_t> keys, values;
    uint32_t count = 0;
    int err = DumpBatched(fd, ksize, vsize, limit, keys, values, count);
    if (err == EINVAL || err == EOPNOTSUPP || err == 524 /* ENOTSUPP */ || err == ENOSYS) {
      keys.clear();
      values.clear();
      count = 0;
      err = DumpByKey(fd, ksize, vsize, limit, keys, values, count);
    }
    if (err) return ThrowErrno(env, std::string("dump map ") + bpf_map__name(map), err);
    Napi::Object out = Napi::Object::New(env);
    out.Set("count", count);
    out.Set("keys", Napi::Buffer<uint8_t>::Copy(env, keys.data(), count * ksize));
    out.Set("values", Napi::Buffer<uint8_t>::Copy(env, values.data(), count * vsize));
    return out;
  }

  // Batched lookups in chunks (the buffers grow with the map's use, not its size): 0, or the errno.
  static int DumpBatched(int fd, size_t ksize, size_t vsize, uint32_t limit, std::vector<uint8_t>& keys,
                         std::vector<uint8_t>& values, uint32_t& count) {
    uint32_t chunk = (uint32_t)std::max<size_t>(64, std::min<size_t>(limit, (1u << 20) / (ksize + vsize)));
    // The batch token is opaque (a bucket index for hash maps); key-sized and at least 8 bytes is enough.
    std::vector<uint8_t> in(std::max<size_t>(ksize, 8)), out(in.size());
    bool first = true;
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    while (count < limit) {
      uint32_t n = std::min(chunk, limit - count);
      keys.resize((size_t)(count + n) * ksize);
      values.resize((size_t)(count + n) * vsize);
      int rc = bpf_map_lookup_batch(fd, first ? nullptr : in.data(), out.data(), keys.data() + (size_t)count * ksize,
                                    values.data() + (size_t)count * vsize, &n, &opts);
      int e = rc ? errno : 0;
      if (e == ENOSPC && n == 0) {  // a hash bucket holds more entries than the chunk: take bigger chunks
        chunk *= 2;
        continue;
      }
      if (e && e != ENOENT) return e;
      count += n;
      if (e == ENOENT) break;  // the whole map was read
      in.swap(out);
      first = false;
    }
    return 0;
  }

  static int DumpByKey(int fd, size_t ksize, size_t vsize, uint32_t limit, std::vector<uint8_t>& keys,
                       std::vector<uint8_t>& values, uint32_t& count) {
    std::vector<uint8_t> cur(ksize), next(ksize), value(vsize);
    void* prev = nullptr;
    while (count < limit && bpf_map_get_next_key(fd, prev, next.data()) == 0) {
      if (bpf_map_lookup_elem(fd, next.data(), value.data()) == 0) {
        keys.insert(keys.end(), next.begin(), next.end());
        values.insert(values.end(), value.begin(), value.end());
        count++;
      }
      cur.swap(next);
      prev = cur.data();
    }
    return 0;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Destroy();
    return info.Env().Undefined();
  }
};

Napi::Object InitBpfObject(Napi::Env env, Napi::Object exports) {
  exports.Set("BpfObject", BpfObject::Define(env));
  return exports;
}

}  // namespace netbpf
