#include "memory.h"

#include <napi.h>

#include <atomic>
#include <chrono>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <ATen/record_function.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/CachingDeviceAllocator.h>
#include <c10/core/alignment.h>
#include <c10/core/impl/alloc_cpu.h>

namespace tg {
namespace {

std::atomic<int64_t> g_live{0};
// The measured scope: its id (0: none), the live bytes of blocks allocated inside it, their peak.
std::atomic<uint64_t> g_scope{0};
std::atomic<uint64_t> g_nextScope{1};
std::atomic<int64_t> g_scopeLive{0};
std::atomic<int64_t> g_scopePeak{0};
std::shared_mutex g_runs;
thread_local bool t_jsThread = false;

// What the header in front of each block holds.
struct BlockHeader {
  size_t bytes;
  uint64_t scope;  // the measured scope it was allocated in, or 0
};
static_assert(sizeof(BlockHeader) <= c10::gAlignment, "the header fits one alignment unit");

// Every CPU storage allocation goes through here. The size and scope are kept in a header in
// front of the block (one alignment unit, so the data stays aligned) and the data pointer is
// also the context: some kernels (conv) assert data == context.
class TrackingCpuAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t n) override {
    constexpr size_t kHeader = c10::gAlignment;
    void* base = c10::alloc_cpu(n + kHeader);
    uint64_t scope = t_jsThread ? 0 : g_scope.load();
    *static_cast<BlockHeader*>(base) = BlockHeader{n, scope};
    void* data = static_cast<char*>(base) + kHeader;
    g_live.fetch_add(static_cast<int64_t>(n));
    if (scope != 0) {
      int64_t now = g_scopeLive.fetch_add(static_cast<int64_t>(n)) + static_cast<int64_t>(n);
      int64_t peak = g_scopePeak.load();
      while (now > peak && !g_scopePeak.compare_exchange_weak(peak, now)) {
      }
    }
    return {data, data, &Delete, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &Delete; }
  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

  static void Delete(void* data) {
    if (!data) return;
    void* base = static_cast<char*>(data) - c10::gAlignment;
    const BlockHeader h = *static_cast<BlockHeader*>(base);
    g_live.fetch_sub(static_cast<int64_t>(h.bytes));
    if (h.scope != 0 && h.scope == g_scope.load()) g_scopeLive.fetch_sub(static_cast<int64_t>(h.bytes));
    c10::free_cpu(base);
  }
};

TrackingCpuAllocator g_tracking;

Napi::Value Stats(const Napi::CallbackInfo& info) {
  auto o = Napi::Object::New(info.Env());
  o.Set("cpuLiveBytes", Napi::Number::New(info.Env(), static_cast<double>(g_live.load())));
  o.Set("cpuPeakBytes", Napi::Number::New(info.Env(), static_cast<double>(g_scopePeak.load())));
  return o;
}

}  // namespace

int64_t CpuLiveBytes() { return g_live.load(); }

void InstallTrackingAllocator() {
  t_jsThread = true;
  // Priority above the default (0) so libtorch's own registration cannot displace it.
  c10::SetCPUAllocator(&g_tracking, /*priority=*/10);
}

// Accelerators are measured through c10's device-generic DeviceAllocator (the CUDA caching
// allocator implements it), so this file needs no CUDA headers and one binary serves CPU and
// CUDA libtorch alike.
static c10::DeviceIndex IndexOf(c10::Device device) { return device.has_index() ? device.index() : c10::DeviceIndex(0); }

static int64_t DeviceAllocatedBytes(c10::Device device, bool peak) {
  auto stats = c10::getDeviceAllocator(device.type())->getDeviceStats(IndexOf(device));
  const auto& s = stats.allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)];
  return peak ? s.peak : s.current;
}

MemoryScope::MemoryScope(c10::Device device) : lock_(g_runs), device_(device) {
  if (device_.is_cpu()) {
    baseline_ = g_live.load();
    g_scopeLive.store(0);
    g_scopePeak.store(0);
    g_scope.store(g_nextScope.fetch_add(1));
  } else {
    c10::getDeviceAllocator(device_.type())->resetPeakStats(IndexOf(device_));
    baseline_ = DeviceAllocatedBytes(device_, /*peak=*/false);
  }
}

MemoryScope::~MemoryScope() {
  if (device_.is_cpu()) g_scope.store(0);
}

int64_t MemoryScope::peakAboveBaseline() const {
  if (device_.is_cpu()) return g_scopePeak.load();
  return DeviceAllocatedBytes(device_, /*peak=*/true) - baseline_;
}

SharedRunLock::SharedRunLock() : lock_(g_runs) {}

void ReleaseFreedMemory(int minIntervalMs) {
  static std::atomic<int64_t> last{0};
  int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
  int64_t prev = last.load();
  if (minIntervalMs > 0 && now - prev < minIntervalMs) return;
  if (!last.compare_exchange_strong(prev, now)) return;  // another thread is trimming
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

void InitMemory(Napi::Env env, Napi::Object exports) {
  exports.Set("memoryStats", Napi::Function::New(env, Stats));
  // releaseMemory(): freed heap memory back to the system (malloc_trim), after work that freed much.
  exports.Set("releaseMemory", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    ReleaseFreedMemory();
    return info.Env().Undefined();
  }));
}

}  // namespace tg

namespace tg {
namespace {

struct OpStart : at::ObserverContext {
  std::chrono::steady_clock::time_point t0;
  bool top = false;
};

thread_local std::map<std::string, OpTime>* recording = nullptr;
thread_local int depth = 0;

std::unique_ptr<at::ObserverContext> OnOpStart(const at::RecordFunction&) {
  auto ctx = std::make_unique<OpStart>();
  ctx->top = depth++ == 0;
  ctx->t0 = std::chrono::steady_clock::now();
  return ctx;
}

void OnOpEnd(const at::RecordFunction& fn, at::ObserverContext* ctx) {
  --depth;
  auto* start = static_cast<OpStart*>(ctx);
  if (!recording || !start->top) return;
  auto& t = (*recording)[fn.name()];
  t.ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start->t0).count();
  t.calls++;
}

}  // namespace

OpTimes::OpTimes() {
  recording = new std::map<std::string, OpTime>();
  depth = 0;
  handle_ = at::addThreadLocalCallback(at::RecordFunctionCallback(OnOpStart, OnOpEnd).needsInputs(false).scopes({at::RecordScope::FUNCTION}));
}

OpTimes::~OpTimes() {
  at::removeCallback(handle_);
  delete recording;
  recording = nullptr;
}

const std::map<std::string, OpTime>& OpTimes::byName() const { return *recording; }

}  // namespace tg
