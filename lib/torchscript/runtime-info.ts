import { binding } from './binding';

/** What this process runs on: the libtorch the addon was built against, and CUDA. */
export function runtimeInfo(): { torchVersion: string; libtorchHasCuda: boolean; cudaAvailable: boolean; cudaDevices: number; threads: number } {
  const b = binding();
  return { torchVersion: b.torchVersion, libtorchHasCuda: b.libtorchHasCuda, cudaAvailable: b.cudaAvailable(), cudaDevices: b.cudaDeviceCount(), threads: b.numThreads() };
}
