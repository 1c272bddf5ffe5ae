// RingBuffer: consumes a BPF ring buffer map on a worker thread and hands records to JavaScript in
// batches, one ArrayBuffer of many records per crossing, so the event loop is never blocked by polling.
//
// Batch layout: records back to back, each as [u32 length][length bytes].
// Latency is bounded by poll_ms: BPF programs may submit with BPF_RB_NO_WAKEUP (cheap) and rely on the
// timed poll here, waking the consumer only when the buffer fills past a threshold.
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "common.h"

namespace netbpf {

struct Batch {
  uint8_t* data;
  size_t len;
};

class RingBuffer : public Napi::ObjectWrap<RingBuffer> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "RingBuffer",
                       {
                           InstanceMethod("stop", &RingBuffer::Stop),
                           InstanceMethod("stats", &RingBuffer::Stats),
                       });
  }

  // new RingBuffer(mapFd, onBatch(ArrayBuffer), { pollMs, batchBytes, maxQueuedBatches })
  explicit RingBuffer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<RingBuffer>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsFunction()) {
      Napi::TypeError::New(env, "RingBuffer(mapFd, onBatch, options)").ThrowAsJavaScriptException();
      return;
    }
    Napi::Object opts = info.Length() > 2 && info[2].IsObject() ? info[2].As<Napi::Object>() : Napi::Object::New(env);
    poll_ms_ = opts.Has("pollMs") ? opts.Get("pollMs").ToNumber().Int32Value() : 10;
    batch_cap_ = opts.Has("batchBytes") ? opts.Get("batchBytes").ToNumber().Uint32Value() : 256 * 1024;
    size_t max_queue = opts.Has("maxQueuedBatches") ? opts.Get("maxQueuedBatches").ToNumber().Uint32Value() : 16;

    // Own a duplicate of the map fd so the consumer outlives a closed BpfObject safely.
    map_fd_ = dup(info[0].ToNumber().Int32Value());
    if (map_fd_ < 0) {
      ThrowErrno(env, "ring buffer map fd", errno);
      return;
    }
    rb_ = ring_buffer__new(map_fd_, &RingBuffer::OnRecord, this, nullptr);
    int err = libbpf_get_error(rb_);
    if (err) {
      rb_ = nullptr;
      close(map_fd_);
      map_fd_ = -1;
      ThrowErrno(env, "open ring buffer", err);
      return;
    }
    napi_value promise;
    napi_create_promise(env, &stopped_deferred_, &promise);
    stopped_promise_ = Napi::Persistent(Napi::Object(env, promise));
    tsfn_ = Napi::ThreadSafeFunction::New(env, info[1].As<Napi::Function>(), "netbpf-ringbuf", max_queue, 1, this,
                                          &RingBuffer::Finalize, (void*)nullptr);
    Ref();  // alive until the worker has finished and the final batch was delivered
    worker_ = std::thread(&RingBuffer::Run, this);
  }

  ~RingBuffer() {
    if (rb_) ring_buffer__free(rb_);
    if (map_fd_ >= 0) close(map_fd_);
    free(batch_.data);
  }

 private:
  ring_buffer* rb_ = nullptr;
  int map_fd_ = -1;
  int poll_ms_;
  size_t batch_cap_;
  Batch batch_ = {nullptr, 0};
  std::thread worker_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> records_{0}, bytes_{0}, batches_{0};
  int poll_error_ = 0;
  bool finished_ = false;
  Napi::ThreadSafeFunction tsfn_;
  // The stop promise: its napi_deferred stays valid until settled; the promise object itself must be held
  // by a persistent reference (a napi_value does not outlive the handle scope that created it).
  napi_deferred stopped_deferred_ = nullptr;
  Napi::ObjectReference stopped_promise_;

  static int OnRecord(void* ctx, void* data, size_t size) {
    RingBuffer* self = (RingBuffer*)ctx;
    size_t need = 4 + size;
    if (self->batch_.data && self->batch_.len + need > self->batch_cap_) self->Flush();
    if (!self->batch_.data) {
      size_t cap = need > self->batch_cap_ ? need : self->batch_cap_;
      self->batch_.data = (uint8_t*)malloc(cap);
      if (!self->batch_.data) return -ENOMEM;
    }
    uint32_t len = (uint32_t)size;
    memcpy(self->batch_.data + self->batch_.len, &len, 4);
    memcpy(self->batch_.data + self->batch_.len + 4, data, size);
    self->batch_.len += need;
    self->records_.fetch_add(1, std::memory_order_relaxed);
    return 0;
  }

  // Hands the current batch to the JS thread; blocks when JS is behind (bounded queue), which lets
  // the ring buffer fill and the kernel side count what it could not store.
  void Flush() {
    if (!batch_.data || batch_.len == 0) return;
    Batch* out = new Batch(batch_);
    batch_ = {nullptr, 0};
    bytes_.fetch_add(out->len, std::memory_order_relaxed);
    batches_.fetch_add(1, std::memory_order_relaxed);
    if (tsfn_.BlockingCall(out, &RingBuffer::Deliver) != napi_ok) {
      free(out->data);
      delete out;
    }
  }

  static void Deliver(Napi::Env env, Napi::Function callback, Batch* batch) {
    if (env == nullptr) {
      free(batch->data);
      delete batch;
      return;
    }
    Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(
        env, batch->data, batch->len, [](Napi::Env, void* data) { free(data); });
    delete batch;
    callback.Call({buffer});
  }

  void Run() {
    while (!stop_.load()) {
      // poll() consumes only rings that signalled a wakeup; records submitted with BPF_RB_NO_WAKEUP are
      // picked up by the consume() that follows every poll, at the latest poll_ms after submission.
      int n = ring_buffer__poll(rb_, poll_ms_);
      if (n >= 0 || n == -EINTR) n = ring_buffer__consume(rb_);
      if (n < 0 && n != -EINTR) {
        poll_error_ = -n;
        break;
      }
      Flush();
    }
    ring_buffer__consume(rb_);  // whatever arrived before stop() is delivered, not dropped
    Flush();
    tsfn_.Release();
  }

  static void Finalize(Napi::Env env, void*, RingBuffer* self) {
    self->worker_.join();
    self->finished_ = true;
    if (self->poll_error_) {
      char buf[128];
      libbpf_strerror(self->poll_error_, buf, sizeof(buf));
      Napi::Error error = Napi::Error::New(env, std::string("ring buffer poll: ") + buf);
      error.Set("errno", Napi::Number::New(env, self->poll_error_));
      napi_reject_deferred(env, self->stopped_deferred_, error.Value());
    } else {
      napi_resolve_deferred(env, self->stopped_deferred_, env.Undefined());
    }
    self->Unref();
  }

  // Stops polling after delivering every record already in the buffer; resolves once the worker is gone.
  Napi::Value Stop(const Napi::CallbackInfo& info) {
    stop_.store(true);
    return stopped_promise_.Value();
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object out = Napi::Object::New(env);
    out.Set("records", Napi::Number::New(env, (double)records_.load()));
    out.Set("bytes", Napi::Number::New(env, (double)bytes_.load()));
    out.Set("batches", Napi::Number::New(env, (double)batches_.load()));
    out.Set("finished", Napi::Boolean::New(env, finished_));
    return out;
  }
};

Napi::Object InitRingBuffer(Napi::Env env, Napi::Object exports) {
  exports.Set("RingBuffer", RingBuffer::Define(env));
  return exports;
}

}  // namespace netbpf
