// Shared helpers of the netbpf addon: error conversion and libbpf log capture.
#pragma once

#include <napi.h>

#include <string>

namespace netbpf {

// Throws a JS Error carrying errno, the errno name and the libbpf messages logged since the last call.
// libbpf returns -errno; pass the positive errno.
Napi::Value ThrowErrno(Napi::Env env, const std::string& what, int err);

// libbpf warnings collected since the last ThrowErrno / TakeLibbpfLog (verifier output, missing BTF, ...).
std::string TakeLibbpfLog();

void InstallLibbpfLogger();

// Whether this process may look up BTF object ids (BPF_BTF_GET_NEXT_ID), which libbpf does to find kernel
// modules' BTF. Some kernels let only CAP_SYS_ADMIN do it (6.1: EPERM with CAP_BPF); probed once.
bool ModuleBtfIdsReadable();

Napi::Object InitBpfObject(Napi::Env env, Napi::Object exports);
Napi::Object InitRingBuffer(Napi::Env env, Napi::Object exports);
Napi::Object InitKernelBtf(Napi::Env env, Napi::Object exports);
Napi::Object InitCtnetlink(Napi::Env env, Napi::Object exports);
Napi::Object InitSockDiag(Napi::Env env, Napi::Object exports);

}  // namespace netbpf
