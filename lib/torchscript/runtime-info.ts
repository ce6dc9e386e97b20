import { binding } from './binding';

export interface RuntimeInfo {
  torchVersion: string;
  libtorchHasCuda: boolean;
  hasMkldnn: boolean;
  hasMkl: boolean;
  cudaAvailable: boolean;
  cudaDevices: number;
  threads: number;
}

/** What this process runs on: the libtorch the addon was built against, CUDA, oneDNN and MKL. */
export function runtimeInfo(): RuntimeInfo {
  const b = binding();
  return {
    torchVersion: b.torchVersion, libtorchHasCuda: b.libtorchHasCuda, hasMkldnn: b.hasMkldnn === true, hasMkl: b.hasMkl === true,
    cudaAvailable: b.cudaAvailable(), cudaDevices: b.cudaDeviceCount(), threads: b.numThreads(),
  };
}
