// Peak-memory measurement: live bytes of c10 CPU tensor storage (a tracking allocator),
// and an accelerator's caching-allocator statistics (c10::DeviceAllocator) on CUDA.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <mutex>
#include <shared_mutex>

#include <c10/core/Device.h>

namespace tg {

int64_t CpuLiveBytes();
// Installs the tracking allocator; called on each JS thread that loads the addon, which marks
// that thread as one whose allocations never belong to a measured run (runs are on workers).
void InstallTrackingAllocator();

// A measured figure is the run's own: a measured run holds the run lock exclusively, so no
// other run, load or shape run allocates while it is measured; every other run holds it shared
// (SharedRunLock). On CPU only blocks allocated inside the scope, by any thread but a JS thread
// (the run's worker, intra-op and inter-op threads), count; blocks that existed before and are
// freed meanwhile (another caller disposing its outputs) do not lower the figure.
class MemoryScope {
 public:
  explicit MemoryScope(c10::Device device);
  ~MemoryScope();
  int64_t peakAboveBaseline() const;
  int64_t baseline() const { return baseline_; }

 private:
  std::unique_lock<std::shared_mutex> lock_;
  c10::Device device_;
  int64_t baseline_ = 0;
};

// Held by unmeasured runs, loads and shape runs: they run together, never during a measured run.
class SharedRunLock {
 public:
  SharedRunLock();

 private:
  std::shared_lock<std::shared_mutex> lock_;
};

// Time per top-level operator of a run on the calling thread (RecordFunction callbacks): the
// ops the graph itself calls, not the ATen ops they call inside. Adds nothing when not asked.
struct OpTime { double ms = 0; int64_t calls = 0; };
class OpTimes {
 public:
  OpTimes();   // starts recording on this thread
  ~OpTimes();  // stops
  const std::map<std::string, OpTime>& byName() const;

 private:
  uint64_t handle_;
};

// Hands memory freed by glibc's allocator back to the system (malloc_trim), at most every
// `minIntervalMs`: freed tensor storage otherwise stays in the process's arenas (RSS grows over
// load/run/dispose cycles). Cheap to call often.
void ReleaseFreedMemory(int minIntervalMs = 0);

}  // namespace tg
