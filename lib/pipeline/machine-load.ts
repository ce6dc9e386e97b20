// Whether a run's times can be trusted on this machine. Other processes competing for the cores
// make libtorch's OpenMP threads spin against them, and times grow many-fold (ResNet-18 at batch
// 2: 39 ms quiet, 500-1,500 ms beside other jobs on 2 cores). The load average before the runs
// says how busy the machine was; the spread of each graph's timed runs says whether it stayed so.
import { availableParallelism, loadavg } from 'os';
import { median } from './median';

export interface MachineLoad {
  /** The 1-minute load average when the timed runs began. */
  loadAverage: number;
  cores: number;
  /** The widest (max - min) / median over the timed graphs. */
  spread: number;
  /** Why the times cannot be trusted, when they cannot. */
  warning?: string;
}

/** The load average now (call before timing). */
export function loadBefore(): number {
  return loadavg()[0];
}

/**
 * The verdict for runs that began at `loadAverage` and took `samples` (ms) per graph. Busy: the
 * load average was at least the core count (this process itself adds about one while it runs),
 * or some graph's runs spread over more than half their median.
 */
export function machineLoad(loadAverage: number, samples: readonly (readonly number[])[]): MachineLoad {
  const cores = availableParallelism();
  const spreadOf = (xs: readonly number[]) => {
    if (xs.length < 2) return 0;
    const mid = median(xs);
    return mid > 0 ? (Math.max(...xs) - Math.min(...xs)) / mid : 0;
  };
  const spread = Math.max(0, ...samples.map(spreadOf));
  const reasons: string[] = [];
  if (loadAverage >= cores) reasons.push(`load average ${loadAverage.toFixed(1)} on ${cores} cores`);
  if (spread > 0.5) reasons.push(`runs of one graph spread over ${(spread * 100).toFixed(0)}% of their median`);
  const warning = `the machine was busy (${reasons.join('; ')}): times may be off`;
  return { loadAverage, cores, spread, ...(reasons.length ? { warning } : {}) };
}
