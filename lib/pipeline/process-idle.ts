// Waiting for processes to go idle between timed runs. A runtime's thread pool keeps its threads
// spinning for a while after a run returns (onnxruntime's intra-op pool, torch's OpenMP team in a
// Python anchor, libgomp's own here): on a machine with few cores the run timed next would share
// them with that spinning and read slower. Measured on the 2-core machine: the optimized model
// timed right after an onnxruntime-node run read 2.1x its time on ResNet-18.
import * as fs from 'fs';

/** CPU time (ns) that process `pid`'s threads have used, from /proc/PID/task/TID/schedstat; null without /proc. */
export function processCpuNs(pid: number): number | null {
  let tasks: string[];
  try {
    tasks = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return null;
  }
  let total = 0;
  for (const tid of tasks) {
    try {
      total += Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // A thread that ended between the listing and the read used nothing more.
    }
  }
  return total;
}

export interface IdleOptions {
  /** The window over which use is measured (ms). */
  windowMs?: number;
  /** Idle: together they used less than this fraction of one core over a window... */
  busyFraction?: number;
  /** ...this many windows in a row (a busy process sharing cores with others may get none for one window). */
  idleWindows?: number;
  /** Give up waiting after this long (ms). */
  maxMs?: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Wait until processes `pids` together use less than `busyFraction` of one core over `idleWindows`
 * windows of `windowMs` in a row, at most `maxMs`. Resolves to the ms waited. Where /proc cannot be
 * read (not Linux), it waits `maxMs / 10` once instead.
 */
export async function untilIdle(pids: readonly number[], o: IdleOptions = {}): Promise<number> {
  const windowMs = o.windowMs ?? 10, busyFraction = o.busyFraction ?? 0.15, maxMs = o.maxMs ?? 500, idleWindows = o.idleWindows ?? 2;
  const t0 = performance.now();
  const used = () => {
    let sum = 0;
    for (const p of pids) {
      const ns = processCpuNs(p);
      if (ns === null) return null;
      sum += ns;
    }
    return sum;
  };
  let before = used();
  if (before === null) {
    await sleep(maxMs / 10);
    return performance.now() - t0;
  }
  let idle = 0;
  while (performance.now() - t0 < maxMs) {
    const w0 = performance.now();
    await sleep(windowMs);
    const after = used();
    if (after === null) break;
    const elapsedNs = (performance.now() - w0) * 1e6;
    idle = after - before < busyFraction * elapsedNs ? idle + 1 : 0;
    if (idle >= idleWindows) break;
    before = after;
  }
  return performance.now() - t0;
}
