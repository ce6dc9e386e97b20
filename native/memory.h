// Peak-memory measurement: live bytes of c10 CPU tensor storage (a tracking allocator),
// and an accelerator's caching-allocator statistics (c10::DeviceAllocator) on CUDA.
#pragma once

#include <cstdint>
#include <mutex>

#include <c10/core/Device.h>

namespace tg {

int64_t CpuLiveBytes();
void InstallTrackingAllocator();

// Measures the peak of live storage on one device above the level at construction.
// Measured regions are serialised: the counters are process-wide.
class MemoryScope {
 public:
  explicit MemoryScope(c10::Device device);
  ~MemoryScope();
  int64_t peakAboveBaseline() const;
  int64_t baseline() const { return baseline_; }

 private:
  std::unique_lock<std::mutex> lock_;
  c10::Device device_;
  int64_t baseline_ = 0;
};

}  // namespace tg
