#include "memory.h"

#include <napi.h>

#include <atomic>
#include <c10/core/CPUAllocator.h>
#include <c10/core/CachingDeviceAllocator.h>
#include <c10/core/alignment.h>
#include <c10/core/impl/alloc_cpu.h>

namespace tg {
namespace {

std::atomic<int64_t> g_live{0};
std::atomic<int64_t> g_peak{0};
std::mutex g_measure;

// Every CPU storage allocation goes through here. The size is kept in a header in front of
// the block (one alignment unit, so the data stays aligned) and the data pointer is also the
// context: some kernels (conv) assert data == context.
class TrackingCpuAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t n) override {
    constexpr size_t kHeader = c10::gAlignment;
    void* base = c10::alloc_cpu(n + kHeader);
    *static_cast<size_t*>(base) = n;
    void* data = static_cast<char*>(base) + kHeader;
    int64_t now = g_live.fetch_add(static_cast<int64_t>(n)) + static_cast<int64_t>(n);
    int64_t peak = g_peak.load();
    while (now > peak && !g_peak.compare_exchange_weak(peak, now)) {
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
    g_live.fetch_sub(static_cast<int64_t>(*static_cast<size_t*>(base)));
    c10::free_cpu(base);
  }
};

TrackingCpuAllocator g_tracking;

Napi::Value Stats(const Napi::CallbackInfo& info) {
  auto o = Napi::Object::New(info.Env());
  o.Set("cpuLiveBytes", Napi::Number::New(info.Env(), static_cast<double>(g_live.load())));
  o.Set("cpuPeakBytes", Napi::Number::New(info.Env(), static_cast<double>(g_peak.load())));
  return o;
}

}  // namespace

int64_t CpuLiveBytes() { return g_live.load(); }

void InstallTrackingAllocator() {
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

MemoryScope::MemoryScope(c10::Device device) : lock_(g_measure), device_(device) {
  if (device_.is_cpu()) {
    baseline_ = g_live.load();
    g_peak.store(baseline_);
  } else {
    c10::getDeviceAllocator(device_.type())->resetPeakStats(IndexOf(device_));
    baseline_ = DeviceAllocatedBytes(device_, /*peak=*/false);
  }
}

MemoryScope::~MemoryScope() = default;

int64_t MemoryScope::peakAboveBaseline() const {
  if (device_.is_cpu()) return g_peak.load() - baseline_;
  return DeviceAllocatedBytes(device_, /*peak=*/true) - baseline_;
}

void InitMemory(Napi::Env env, Napi::Object exports) {
  exports.Set("memoryStats", Napi::Function::New(env, Stats));
}

}  // namespace tg
