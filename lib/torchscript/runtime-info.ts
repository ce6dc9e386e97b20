import { binding } from './binding';

export interface RuntimeInfo {
  torchVersion: string;
  libtorchHasCuda: boolean;
  hasMkldnn: boolean;
  hasMkl: boolean;
  /** The instruction set ATen's CPU kernels (and torchgraph's own) run: 'AVX512', 'AVX2' or 'DEFAULT'. */
  cpuCapability: string;
  cudaAvailable: boolean;
  cudaDevices: number;
  threads: number;
}

/** What this process runs on: the libtorch the addon was built against, CUDA, oneDNN and MKL. */
export function runtimeInfo(): RuntimeInfo {
  const b = binding();
  return {
    torchVersion: b.torchVersion, libtorchHasCuda: b.libtorchHasCuda, hasMkldnn: b.hasMkldnn === true, hasMkl: b.hasMkl === true,
    cpuCapability: b.cpuCapability ?? 'DEFAULT',
    cudaAvailable: b.cudaAvailable(), cudaDevices: b.cudaDeviceCount(), threads: b.numThreads(),
  };
}
