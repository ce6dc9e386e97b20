// Run the original module, the unfused (decomposed) graph and the fused graph on the same
// inputs, interleaved, and compare: median time and spread, measured peak memory, max abs
// diff of every output against the original.
import type { Graph } from '../core/ir';
import type { Module } from '../torchscript/module';
import type { NativeGraph, NativeRunResult, NativeValue } from '../torchscript/binding';
import { native, nativeSync } from '../core/errors';
import { Tensor, flattenTensors, fromNativeValue, nativeOf } from '../torchscript/tensor';
import type { WarmUp } from './warm-up';
import { untilIdle } from './process-idle';
import { median } from './median';
import { interleavedRuns, ranSlower, runDiscardingOutputs, type RunMeasurement } from './interleaved-runs';
import { profileOps, slowerOps, type SlowerOp } from './slower-ops';
import type { OpTime } from '../report/types';
import { loadBefore, machineLoad, type MachineLoad } from './machine-load';

export type RunName = 'original' | 'unfused' | 'fused';

export interface RunStats {
  name: RunName;
  medianMs: number;
  minMs: number;
  maxMs: number;
  samples: number[];
  /** Measured peak of live tensor storage above the level before the run (median over runs). */
  peakBytes: number;
  /** max abs diff of the outputs against the original (0 for the original itself; null when not comparable). */
  maxAbsDiff: number | null;
  /** Warm-up runs before timing, and whether the time had settled (absent with warmup 0). */
  warmUp?: WarmUp;
}

/** A run outside this process timed in the same rotation (PyTorch eager, torch.compile: lib/app/anchors.ts). */
export interface ExternalRunner {
  name: string;
  /** Runs once; resolves to its time in ms. */
  time(): Promise<number>;
  /** The process it runs in, when not this one: its threads may spin on after it answers, and the
   * next run waits until they are idle (process-idle.ts). */
  pid?: number;
}

export interface TimingStats { medianMs: number; minMs: number; maxMs: number; samples: number[] }

export interface Comparison {
  device: string;
  runs: Record<RunName, RunStats>;
  /** The external runs' times, by name, from the same repetitions. */
  external?: Record<string, TimingStats>;
  /** Change of process RSS over all the runs: includes allocator caching, not a peak. */
  rssDeltaBytes: number;
  /** How busy the machine was while timing, and a warning when the times cannot be trusted. */
  load: MachineLoad;
  /** When the fused runs were slower (ranSlower, interleaved-runs.ts): the op kinds whose time grew most, profiled (slower-ops.ts). */
  slowerOps?: SlowerOp[];
  /** With the `profile` option: every op kind's time in the fused and unfused graphs (slower-ops.ts). */
  opTimes?: OpTime[];
}

export interface CompareOptions {
  /** Warm-up runs at least (default 2), then more until two successive runs agree (warm-up.ts); 0: none. */
  warmup?: number;
  repetitions?: number;
  /** Called after each timed run (for progress displays). */
  onRun?: (name: RunName, rep: number, ms: number) => void;
  /** Timed in each repetition after this process's three runs (warmed up by their owner). */
  external?: readonly ExternalRunner[];
  /** Profile the fused and unfused graphs per op kind after timing them (a few more runs each). */
  profile?: boolean;
}

interface Runner { name: RunName; run(inputs: NativeValue[]): Promise<NativeRunResult>; dispose(): void }

/**
 * One run of each external runner, in an order rotating with `rep` as the forms' does. One in
 * another process starts once this process is idle and is waited out after (its thread pool's
 * spinning would otherwise slow whatever runs next, here or there).
 */
export async function timeExternals(external: readonly ExternalRunner[], rep: number, times: Map<string, number[]>): Promise<void> {
  for (let k = 0; k < external.length; k++) {
    const x = external[(rep + k) % external.length];
    if (x.pid !== undefined) await untilIdle([process.pid]);
    times.get(x.name)!.push(await x.time());
    if (x.pid !== undefined) await untilIdle([x.pid, process.pid]);
  }
}

function timing(ts: number[]): TimingStats {
  return { medianMs: median(ts), minMs: Math.min(...ts), maxMs: Math.max(...ts), samples: ts };
}

export { median };

/**
 * Max abs diff over every output tensor; null when shapes or counts differ or a NaN appears in
 * one output where the other has none. As torch.testing.assert_close (with equal_nan) compares:
 * the same infinity, or NaN, at the same place in both agrees; an infinity against a finite
 * value or the other infinity is an infinite difference.
 */
export function maxAbsDiff(a: Tensor[], b: Tensor[]): number | null {
  if (a.length !== b.length) return null;
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i].shape.join('x') !== b[i].shape.join('x')) return null;
    const x = a[i].data();
    const y = b[i].data();
    if (x instanceof BigInt64Array || y instanceof BigInt64Array) {
      for (let j = 0; j < x.length; j++) if (x[j] !== y[j]) return Infinity;
      continue;
    }
    for (let j = 0; j < x.length; j++) {
      const p = (x as Float32Array)[j];
      const q = (y as Float32Array)[j];
      if (p === q) continue; // equal, the same infinity included
      if (Number.isNaN(p) || Number.isNaN(q)) {
        if (Number.isNaN(p) && Number.isNaN(q)) continue;
        return null;
      }
      const d = Math.abs(p - q);
      if (d > worst) worst = d;
    }
  }
  return worst;
}

export async function compareGraphs(
  module: Module, graphs: { unfused: Graph; fused: Graph }, inputs: Tensor[], options: CompareOptions = {},
): Promise<Comparison> {
  const warmup = options.warmup ?? 2;
  const reps = options.repetitions ?? 5;
  const h = module._native;
  const device = module.device;
  const moved = inputs.map((t) => (t.device === device ? t : t.to(device)));
  // Arguments not given take their defaults, the same for the original and the rebuilt graphs.
  const args = module._resolveInputs(moved.map(nativeOf));
  const built: NativeGraph[] = [];
  const runners: Runner[] = [
    { name: 'original', run: (xs) => h.run('forward', xs, { measureMemory: true }), dispose: () => {} },
  ];
  for (const name of ['unfused', 'fused'] as const) {
    const g = nativeSync(() => h.buildGraph(graphs[name].toData()));
    built.push(g);
    runners.push({ name, run: (xs) => g.run(xs, { measureMemory: true }), dispose: () => g.dispose() });
  }
  const rss0 = process.memoryUsage().rss;
  try {
    const outputs = new Map<RunName, Tensor[]>();
    const externalTimes = new Map<string, number[]>((options.external ?? []).map((x) => [x.name, []]));
    let load0 = 0;
    const forms = runners.map((r) => ({
      // The last warm-up run's outputs are the ones compared.
      warm: async () => {
        const res = await native(() => r.run(args));
        outputs.get(r.name)?.forEach((t) => t.dispose());
        outputs.set(r.name, flattenTensors(fromNativeValue(res.output)));
        return res.ms;
      },
      timed: async (rep: number): Promise<RunMeasurement> => {
        const res = await runDiscardingOutputs(() => r.run(args));
        options.onRun?.(r.name, rep, res.ms);
        return res;
      },
    }));
    const { warmUps, results } = await interleavedRuns(forms, {
      repetitions: reps, warmUp: warmup > 0 ? { min: warmup } : null, beforeTiming: () => { load0 = loadBefore(); },
      afterRepetition: (rep) => timeExternals(options.external ?? [], rep, externalTimes),
    });
    const original = outputs.get('original')!;
    const times = results.map((rs) => rs.map((m) => m.ms));
    const stats = (r: Runner, i: number): RunStats => ({
      name: r.name, ...timing(times[i]),
      peakBytes: median(results[i].map((m) => m.peakBytes)),
      maxAbsDiff: r.name === 'original' ? 0 : maxAbsDiff(outputs.get(r.name)!, original),
      ...(warmUps[i] ? { warmUp: warmUps[i] } : {}),
    });
    const runs = Object.fromEntries(runners.map((r, i) => [r.name, stats(r, i)])) as Record<RunName, RunStats>;
    // Asked for, or slower (ranSlower, optimize's test too): profile where the time goes while the graphs are built.
    const slowerThanOriginal = ranSlower(runs.fused.samples, runs.original.samples);
    const opTimes = options.profile || slowerThanOriginal
      ? await profileOps({ unfused: built[0], fused: built[1] }, graphs.fused, args) : undefined;
    const result: Comparison = {
      device, runs,
      ...(slowerThanOriginal && opTimes ? { slowerOps: slowerOps(opTimes) } : {}),
      ...(options.profile && opTimes ? { opTimes } : {}),
      rssDeltaBytes: process.memoryUsage().rss - rss0,
      load: machineLoad(load0, times),
      ...(externalTimes.size ? { external: Object.fromEntries([...externalTimes].map(([k, ts]) => [k, timing(ts)])) } : {}),
    };
    for (const outs of outputs.values()) outs.forEach((t) => t.dispose());
    return result;
  } finally {
    runners.forEach((r) => r.dispose());
    moved.forEach((t, i) => { if (t !== inputs[i]) t.dispose(); });
  }
}
