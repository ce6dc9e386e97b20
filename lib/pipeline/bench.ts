// One benchmark case measured: prepare the three graphs, run them interleaved (warm-up,
// repetitions), and report medians, spread, measured peaks, max abs diffs and the project's
// targets as ratios within the same process. Which cases, and printing, are lib/app/bench.ts.
import { warmUp } from './warm-up';
import { loadModel } from '../program/load-model';
import { readNpy } from '../torchscript/npy';
import type { TypedArray } from '../torchscript/binding';
import { prepareGraphs, type FuseOptions, type Partitioner } from './prepare';
import { checkModelTakesInputs } from './input-check';
import { randomTensor } from '../torchscript/random';
import { runtimeInfo } from '../torchscript/runtime-info';
import type { InputSpec } from '../torchscript/propagate-shapes';
import { Tensor } from '../torchscript/tensor';
import { compareGraphs, maxAbsDiff as outputsDiff, median, type Comparison, type ExternalRunner } from './compare';
import { describeSlowerOps } from './slower-ops';
import { optimize } from './optimize';
import { flattenTensors } from '../torchscript/tensor';
import type { Module } from '../torchscript/module';
import type { NativeGraph } from '../torchscript/binding';
import { native, nativeSync } from '../core/errors';
import { nativeOf } from '../torchscript/tensor';
import { countFlops } from '../analysis';
import { LOWERINGS, type LoweringName } from '../fusion/lowerings';

export interface BenchCase {
  name: string;
  /** The model as named (a built-in name or a path). */
  model: string;
  /** The TorchScript file to load. */
  file: string;
  inputs: InputSpec[];
  /** Per input, a .npy file to run on instead of a seeded random tensor (token ids must stay in the vocabulary). */
  files?: (string | undefined)[];
  warmup?: number;
  repetitions?: number;
}

export interface BenchCaseResult {
  name: string;
  model: string;
  inputs: InputSpec[];
  comparison: Comparison;
  attentions: { found: number; decomposed: number };
  loweredCores: number;
  /** Attention cores the fused lowering saw (lowered or not). */
  cores: number;
  /** FLOPs of one forward of the fused graph. */
  flops: number;
  /** JS wall time of a forward call minus the time measured around it inside C++, over the latter. */
  addonOverhead: { wallMs: number; nativeMs: number; ratio: number };
  prepareMs: Record<string, number>;
  /** The anchors' preparation (bench --anchors): seconds per mode, and the max abs diff of their
   * eager output from the model file's, the proof they hold the same weights. */
  /** The optimized model's (optimize()) max abs diff from the original's output, when it was timed (as the external run "optimized"). */
  optimizedMaxAbsDiff?: number | null;
  anchors?: {
    compileSeconds: Record<string, number>; eagerMaxAbsDiff?: number; maxAbsDiffs?: Record<string, number>;
    /** What each mode ran, and the modes that could not be prepared with the reason (scripts/anchors.py). */
    routes?: Record<string, string>; skipped?: Record<string, string>;
  };
}

export interface BenchTarget { name: string; value: number; limit: number; passed: boolean; detail: string }

export interface BenchReport {
  environment: ReturnType<typeof runtimeInfo> & { device: string; node: string; cpus: number; cpuModel?: string };
  /** This machine's float32 GEMM rate measured in the same run (bench --anchors): the limit for GFLOP/s. */
  gemmGflops?: number;
  cases: BenchCaseResult[];
  /** The project's targets (npm run bench); absent for `torchgraph bench`, which has none. */
  targets?: BenchTarget[];
  passed: boolean;
}

export interface RunCaseOptions {
  device?: string;
  seed?: number;
  partition?: Partitioner;
  onRun?: () => void;
  /** Runs outside this process timed in the same repetitions (the anchors). */
  external?: readonly ExternalRunner[];
  /** Lowerings on or off (each is measured both ways before it is on by default). */
  fuse?: FuseOptions;
  /** Lowerings to time off as well, in the same repetitions: one more fused graph per name, run as "fused, NAME off". */
  ablate?: readonly AblatableLowering[];
  /** Also time the optimized model (optimize() on a second load of the file) in the same repetitions (default: on CPU). */
  optimized?: boolean;
}

/**
 * The optimized model of a second load of the file, as a runner timed next to the others, and its
 * max abs diff from the original's output.
 */
async function optimizedRunner(
  c: BenchCase, device: string, inputs: Tensor[], reference: Module,
): Promise<{ runner: ExternalRunner; maxAbsDiff: number | null; dispose(): void }> {
  const o = await optimize(await loadModel(c.file, { device }), c.inputs);
  try {
    const moved = inputs.map((t) => (t.device === device ? t : t.to(device)));
    const expected = flattenTensors(await reference.forward(...moved));
    let maxAbsDiff: number | null = null;
    // Timed inside libtorch, as the original, unfused and fused runs are (the call from JS is the
    // same for all of them and measured on its own: addonOverhead).
    const once = async () => {
      const got = flattenTensors(await o.forward(...moved));
      maxAbsDiff ??= outputsDiff(expected, got);
      got.forEach((t) => t.dispose());
      return o._lastRunMs;
    };
    await warmUp(once, { min: Math.max(1, c.warmup ?? 2) });
    expected.forEach((t) => t.dispose());
    return {
      runner: { name: 'optimized', time: once },
      maxAbsDiff, dispose: () => o.dispose(),
    };
  } catch (e) {
    o.dispose();
    throw e;
  }
}

/** The FuseOptions switches a bench can time both ways. */
export const ABLATABLE_LOWERINGS: readonly LoweringName[] = LOWERINGS.map((l) => l.name);
export type AblatableLowering = LoweringName;

/** The fused graph built again with each lowering in `names` off, as runners timed next to the others. */
async function ablationRunners(
  module: Module, c: BenchCase, opts: RunCaseOptions, inputs: Tensor[],
): Promise<{ runners: ExternalRunner[]; dispose(): void }> {
  const built: NativeGraph[] = [];
  const args = module._resolveInputs(inputs.map((t) => nativeOf(module.device === t.device ? t : t.to(module.device))));
  try {
    for (const name of opts.ablate ?? []) {
      const off = await prepareGraphs(module, c.inputs, { ...opts.fuse, partition: opts.partition, [name]: false });
      const g = nativeSync(() => module._native.buildGraph(off.fused.toData()));
      built.push(g);
      await warmUp(async () => (await native(() => g.run(args))).ms, { min: Math.max(1, c.warmup ?? 2) }); // by their owner, as anchors are
    }
  } catch (e) {
    built.forEach((g) => g.dispose());
    throw e;
  }
  return {
    runners: built.map((g, i) => ({ name: `fused, ${opts.ablate![i]} off`, time: async () => (await native(() => g.run(args))).ms })),
    dispose: () => built.forEach((g) => g.dispose()),
  };
}

/** The inputs a case runs on: input i drawn from seed + i as its spec says, or read from its .npy file. */
export function caseInputs(c: Pick<BenchCase, 'inputs' | 'files'>, seed = 0): Tensor[] {
  return c.inputs.map((s, i) => {
    const f = c.files?.[i];
    if (f === undefined) return randomTensor(s.shape, s.dtype, (seed + i) >>> 0, s.fill);
    const a = readNpy(f);
    return Tensor.from(a.data as TypedArray, a.shape, a.dtype);
  });
}

export async function runCase(c: BenchCase, opts: RunCaseOptions = {}): Promise<BenchCaseResult> {
  const module = await loadModel(c.file, { device: opts.device ?? 'cpu' });
  const inputs = caseInputs(c, opts.seed);
  let ablation: Awaited<ReturnType<typeof ablationRunners>> | undefined;
  let optimized: Awaited<ReturnType<typeof optimizedRunner>> | undefined;
  try {
    await checkModelTakesInputs(module, inputs);
    ablation = await ablationRunners(module, c, opts, inputs);
    if (opts.optimized ?? module.device === 'cpu') optimized = await optimizedRunner(c, module.device, inputs, module);
    const prepared = await prepareGraphs(module, c.inputs, { ...opts.fuse, partition: opts.partition });
    const comparison = await compareGraphs(module, { unfused: prepared.decomposed, fused: prepared.fused }, inputs, {
      warmup: c.warmup ?? 2, repetitions: c.repetitions ?? 5, onRun: () => opts.onRun?.(),
      external: [...(opts.external ?? []), ...(optimized ? [optimized.runner] : []), ...ablation.runners],
    });
    // Addon overhead: the same forward timed from JS and inside C++.
    const wall: number[] = [];
    const inner: number[] = [];
    for (let i = 0; i < Math.max(5, c.repetitions ?? 5); i++) {
      const t0 = performance.now();
      const r = await module.run('forward', inputs.map((t) => (module.device === t.device ? t : t.to(module.device))));
      wall.push(performance.now() - t0);
      inner.push(r.ms);
    }
    const wallMs = median(wall);
    const nativeMs = median(inner);
    return {
      name: c.name, model: c.model, inputs: c.inputs, comparison,
      attentions: { found: prepared.decomposition.report.found, decomposed: prepared.decomposition.report.decomposed.length },
      loweredCores: prepared.lowering.attentionCores.filter((o) => o.lowered).length,
      cores: prepared.lowering.attentionCores.length,
      flops: countFlops(prepared.fused).total,
      addonOverhead: { wallMs, nativeMs, ratio: (wallMs - nativeMs) / nativeMs },
      prepareMs: prepared.timings,
      ...(optimized ? { optimizedMaxAbsDiff: optimized.maxAbsDiff } : {}),
    };
  } finally {
    ablation?.dispose();
    optimized?.dispose();
    inputs.forEach((t) => t.dispose());
    module.dispose();
  }
}

export function evaluateTargets(cases: BenchCaseResult[]): BenchTarget[] {
  const targets: BenchTarget[] = [];
  const byName = new Map(cases.map((c) => [c.name, c]));
  const ratio = (name: string, limit: number, value: number, detail: string) =>
    targets.push({ name, value, limit, passed: value <= limit, detail });
  const vit = byName.get('vit_b_16 batch 1');
  if (vit) {
    const r = vit.comparison.runs;
    ratio('ViT-B/16 b1: fused time / original', 1.0, r.fused.medianMs / r.original.medianMs,
      `${r.fused.medianMs.toFixed(1)} ms vs ${r.original.medianMs.toFixed(1)} ms`);
    ratio('ViT-B/16 b1: unfused time / original', 1.15, r.unfused.medianMs / r.original.medianMs,
      `${r.unfused.medianMs.toFixed(1)} ms vs ${r.original.medianMs.toFixed(1)} ms`);
    ratio('ViT-B/16 b1: fused peak / original peak', 1.0, r.fused.peakBytes / r.original.peakBytes,
      `${r.fused.peakBytes} B vs ${r.original.peakBytes} B`);
  }
  // The (L, S) score matrix is what fusion removes; in a whole MHA block the projections'
  // outputs (q, k, v, output: 4 x L x E floats) stay, so the block is reported next to the core.
  for (const name of ['attention core L=2048', 'attention L=2048']) {
    const attn = byName.get(name);
    if (!attn) continue;
    const r = attn.comparison.runs;
    ratio(`${name}: fused peak / unfused peak`, 0.05, r.fused.peakBytes / r.unfused.peakBytes,
      `${MiB(r.fused.peakBytes)} MiB vs ${MiB(r.unfused.peakBytes)} MiB`);
  }
  const demo = byName.get('mha_demo');
  if (demo) {
    ratio('mha_demo: addon overhead over the libtorch forward', 0.05, demo.addonOverhead.ratio,
      `${demo.addonOverhead.wallMs.toFixed(2)} ms from JS vs ${demo.addonOverhead.nativeMs.toFixed(2)} ms inside C++`);
  }
  return targets;
}

const MiB = (b: number) => (b / 2 ** 20).toFixed(2);

/** Columns for the anchors: fused time over each anchor's, and the fused graph's GFLOP/s. */
function anchorColumns(report: BenchReport): { head: string[]; cells(c: BenchCaseResult): string[] } {
  const all = [...new Set(report.cases.flatMap((c) => Object.keys(c.comparison.external ?? {})))];
  const modes = all.filter((m) => m !== 'optimized');
  const withOptimized = all.includes('optimized');
  if (!all.length) return { head: [], cells: () => [] };
  const peak = report.gemmGflops;
  const ratio = (a: number | undefined, b: number | undefined) => (a && b ? (a / b).toFixed(3) : 'n/a');
  return {
    head: [...(withOptimized ? ['optimized x', 'diff optimized'] : []), ...modes.map((m) => `fused / ${m}`),
      ...(withOptimized ? modes.map((m) => `optimized / ${m}`) : []), `GFLOP/s fused${peak ? ' (% peak)' : ''}`],
    cells: (c) => {
      const fused = c.comparison.runs.fused.medianMs;
      const optimized = c.comparison.external?.optimized?.medianMs;
      const rate = c.flops / (fused / 1000) / 1e9;
      const diff = c.optimizedMaxAbsDiff;
      const diffCell = diff === undefined || diff === null ? 'n/a' : diff.toExponential(1);
      return [
        ...(withOptimized ? [ratio(optimized, c.comparison.runs.original.medianMs), diffCell] : []),
        ...modes.map((m) => ratio(fused, c.comparison.external?.[m]?.medianMs)),
        ...(withOptimized ? modes.map((m) => ratio(optimized, c.comparison.external?.[m]?.medianMs)) : []),
        `${rate.toFixed(0)}${peak ? ` (${((100 * rate) / peak).toFixed(0)}%)` : ''}`,
      ];
    },
  };
}

export function formatBenchTable(report: BenchReport): string {
  const anchors = anchorColumns(report);
  const rows: string[][] = [[
    'case', 'original ms', 'unfused x', 'fused x', 'peak orig MiB', 'peak unfused MiB', 'peak fused MiB',
    'diff unfused', 'diff fused', 'cores -> SDPA', ...anchors.head,
  ]];
  for (const c of report.cases) {
    const r = c.comparison.runs;
    rows.push([
      c.name,
      `${r.original.medianMs.toFixed(1)} [${r.original.minMs.toFixed(1)}-${r.original.maxMs.toFixed(1)}]`,
      (r.unfused.medianMs / r.original.medianMs).toFixed(3),
      (r.fused.medianMs / r.original.medianMs).toFixed(3),
      MiB(r.original.peakBytes), MiB(r.unfused.peakBytes), MiB(r.fused.peakBytes),
      r.unfused.maxAbsDiff === null ? 'n/a' : r.unfused.maxAbsDiff.toExponential(1),
      r.fused.maxAbsDiff === null ? 'n/a' : r.fused.maxAbsDiff.toExponential(1),
      `${c.loweredCores}/${c.cores}`,
      ...anchors.cells(c),
    ]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((x, i) => (i === 0 ? x.padEnd(widths[i]) : x.padStart(widths[i]))).join('  ');
  const out = [line(rows[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line), ''];
  for (const c of report.cases) {
    if (!c.comparison.slowerOps) continue;
    out.push(`${c.name}: every fused run was slower than every original run; `
      + `profiled, the time grew most in: ${describeSlowerOps(c.comparison.slowerOps)}`, '');
  }
  if (report.targets) out.push('targets (medians, same process):');
  for (const t of report.targets ?? []) {
    out.push(`  ${t.passed ? 'ok  ' : 'MISS'} ${t.name}: ${t.value.toFixed(3)} (limit ${t.limit}) ${t.detail}`);
  }
  if (report.gemmGflops) out.push(`machine peak: float32 GEMM 2048x2048 at ${report.gemmGflops.toFixed(0)} GFLOP/s (same run)`);
  const cpu = report.environment.cpuModel ? ` (${report.environment.cpuModel})` : '';
  const env = report.environment;
  out.push(`device ${env.device}, torch ${env.torchVersion}, ${env.cpus} CPUs${cpu}, node ${env.node}`);
  if (!report.gemmGflops) out.push('machine peak: not measured (`--anchors` measures a float32 GEMM in the resolved Python torch)');
  return out.join('\n');
}
