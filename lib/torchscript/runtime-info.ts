import { binding } from './binding';

export interface RuntimeInfo { torchVersion: string; libtorchHasCuda: boolean; hasMkldnn: boolean; cudaAvailable: boolean; cudaDevices: number; threads: number }

/** What this process runs on: the libtorch the addon was built against, CUDA, and oneDNN. */
export function runtimeInfo(): RuntimeInfo {
  const b = binding();
  return {
    torchVersion: b.torchVersion, libtorchHasCuda: b.libtorchHasCuda, hasMkldnn: b.hasMkldnn === true,
    cudaAvailable: b.cudaAvailable(), cudaDevices: b.cudaDeviceCount(), threads: b.numThreads(),
  };
}
