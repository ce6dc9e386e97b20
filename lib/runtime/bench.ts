// The benchmark harness (`npm run bench`, `torchgraph bench`): for each case, prepare the
// three graphs, run them interleaved (warm-up, repetitions), and report medians, spread,
// measured peaks, max abs diffs and the project's targets as ratios within the same process.
import * as cliProgress from 'cli-progress';
import { Module } from '../module';
import { ensureModel, MODEL_NAMES, readNpy, type ModelName } from '../models';
import type { TypedArray } from '../binding';
import { prepareGraphs, type Partitioner } from '../prepare';
import { randomTensor } from '../random';
import { runtimeInfo } from '../runtime-info';
import type { InputSpec } from '../passes/propagate-shapes';
import { Tensor } from '../tensor';
import { compareGraphs, median, type Comparison } from './compare';
import { builtinFile } from '../cli/model';

export interface BenchCase {
  name: string;
  /** Built-in model name or a TorchScript file. */
  model: string;
  inputs: InputSpec[];
  /** .npy files to run on instead of seeded random inputs (token ids must stay in the vocabulary). */
  files?: string[];
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
  /** JS wall time of a forward call minus the time measured around it inside C++, over the latter. */
  addonOverhead: { wallMs: number; nativeMs: number; ratio: number };
  prepareMs: Record<string, number>;
}

export interface BenchTarget { name: string; value: number; limit: number; passed: boolean; detail: string }

export interface BenchReport {
  environment: ReturnType<typeof runtimeInfo> & { device: string; node: string; cpus: number };
  cases: BenchCaseResult[];
  targets: BenchTarget[];
  passed: boolean;
}

export const STANDARD_SUITE: BenchCase[] = [
  { name: 'mha_demo', model: 'mha_demo', inputs: [{ shape: [4, 196, 768], dtype: 'float32' }], repetitions: 9 },
  { name: 'vit_b_16 batch 1', model: 'vit_b_16', inputs: [{ shape: [1, 3, 224, 224], dtype: 'float32' }], repetitions: 15 },
  { name: 'vit_b_16 batch 8', model: 'vit_b_16', inputs: [{ shape: [8, 3, 224, 224], dtype: 'float32' }], repetitions: 3, warmup: 1 },
  { name: 'attention L=2048', model: 'attention_2048', inputs: [{ shape: [1, 2048, 768], dtype: 'float32' }], repetitions: 5 },
  { name: 'attention core L=2048', model: 'attention_core_2048', inputs: [0, 1, 2].map(() => ({ shape: [1, 12, 2048, 64], dtype: 'float32' as const })), repetitions: 5 },
];

async function modelFile(model: string): Promise<string> {
  if ((MODEL_NAMES as readonly string[]).includes(model)) return builtinFile(await ensureModel(model as ModelName));
  return model;
}

export async function runCase(c: BenchCase, opts: { device?: string; seed?: number; partition?: Partitioner; onRun?: () => void } = {}): Promise<BenchCaseResult> {
  const file = await modelFile(c.model);
  const module = await Module.load(file, { device: opts.device ?? 'cpu' });
  const inputs: Tensor[] = c.files
    ? c.files.map((f) => { const a = readNpy(f); return Tensor.from(a.data as TypedArray, a.shape, a.dtype); })
    : c.inputs.map((s, i) => randomTensor(s.shape, s.dtype, (opts.seed ?? 0) + i));
  try {
    const prepared = await prepareGraphs(module, c.inputs, { partition: opts.partition });
    const comparison = await compareGraphs(module, { unfused: prepared.decomposed, fused: prepared.fused }, inputs, {
      warmup: c.warmup ?? 2, repetitions: c.repetitions ?? 5, onRun: () => opts.onRun?.(),
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
      addonOverhead: { wallMs, nativeMs, ratio: (wallMs - nativeMs) / nativeMs },
      prepareMs: prepared.timings,
    };
  } finally {
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
    ratio('ViT-B/16 b1: fused time / original', 1.0, r.fused.medianMs / r.original.medianMs, `${r.fused.medianMs.toFixed(1)} ms vs ${r.original.medianMs.toFixed(1)} ms`);
    ratio('ViT-B/16 b1: unfused time / original', 1.15, r.unfused.medianMs / r.original.medianMs, `${r.unfused.medianMs.toFixed(1)} ms vs ${r.original.medianMs.toFixed(1)} ms`);
    ratio('ViT-B/16 b1: fused peak / original peak', 1.0, r.fused.peakBytes / r.original.peakBytes, `${r.fused.peakBytes} B vs ${r.original.peakBytes} B`);
  }
  // The (L, S) score matrix is what fusion removes; in a whole MHA block the projections'
  // outputs (q, k, v, output: 4 x L x E floats) stay, so the block is reported next to the core.
  for (const name of ['attention core L=2048', 'attention L=2048']) {
    const attn = byName.get(name);
    if (!attn) continue;
    const r = attn.comparison.runs;
    ratio(`${name}: fused peak / unfused peak`, 0.05, r.fused.peakBytes / r.unfused.peakBytes, `${MiB(r.fused.peakBytes)} MiB vs ${MiB(r.unfused.peakBytes)} MiB`);
  }
  const demo = byName.get('mha_demo');
  if (demo) {
    ratio('mha_demo: addon overhead over the libtorch forward', 0.05, demo.addonOverhead.ratio,
      `${demo.addonOverhead.wallMs.toFixed(2)} ms from JS vs ${demo.addonOverhead.nativeMs.toFixed(2)} ms inside C++`);
  }
  return targets;
}

const MiB = (b: number) => (b / 2 ** 20).toFixed(2);

export function formatBenchTable(report: BenchReport): string {
  const rows: string[][] = [['case', 'original ms', 'unfused x', 'fused x', 'peak orig MiB', 'peak unfused MiB', 'peak fused MiB', 'diff unfused', 'diff fused', 'cores -> SDPA']];
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
    ]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((x, i) => (i === 0 ? x.padEnd(widths[i]) : x.padStart(widths[i]))).join('  ');
  const out = [line(rows[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line), ''];
  out.push('targets (medians, same process):');
  for (const t of report.targets) out.push(`  ${t.passed ? 'ok  ' : 'MISS'} ${t.name}: ${t.value.toFixed(3)} (limit ${t.limit}) ${t.detail}`);
  out.push(`device ${report.environment.device}, torch ${report.environment.torchVersion}, ${report.environment.cpus} CPUs, node ${report.environment.node}`);
  return out.join('\n');
}

export interface RunBenchOptions {
  /** Built-in model names or TorchScript files; empty: the standard suite. */
  models: string[];
  /** --input SPEC strings, in order (for file models). */
  inputs: string[];
  device: string;
  seed: number;
  /** Warm-up runs before timing (undefined: each case's default). */
  warmup?: number;
  /** Timed repetitions (undefined: each case's default). */
  repeat?: number;
  /** Print one JSON object on stdout instead of a table. */
  json: boolean;
  verbose: boolean;
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  /** Fusion groups for the fused graph (default: the decomposition's own attention groups). */
  partition?: Partitioner;
  /** Cases to run instead of `models` (e.g. the real-model corpus). */
  cases?: BenchCase[];
}

export async function runBench(options: RunBenchOptions): Promise<BenchReport> {
  let cases = options.cases ?? STANDARD_SUITE;
  if (!options.cases && options.models.length) {
    cases = await Promise.all(options.models.map(async (m): Promise<BenchCase> => {
      const std = STANDARD_SUITE.find((c) => c.model === m || c.name === m);
      if (std) return std;
      // Other built-in models run on their example inputs unless --input says otherwise.
      if (!options.inputs.length && (MODEL_NAMES as readonly string[]).includes(m)) {
        return { name: m, model: m, inputs: (await ensureModel(m as ModelName)).inputs.map((i) => ({ shape: i.shape, dtype: i.dtype })) };
      }
      if (!options.inputs.length) throw new Error(`bench ${m}: a model file needs --input SPEC`);
      const { parseInputSpec } = require('../cli/input-spec') as { parseInputSpec: (s: string) => { shape: number[]; dtype: InputSpec['dtype'] } };
      return { name: m, model: m, inputs: options.inputs.map((s) => { const p = parseInputSpec(s); return { shape: p.shape, dtype: p.dtype }; }) };
    }));
  }
  cases = cases.map((c) => ({ ...c, warmup: options.warmup ?? c.warmup, repetitions: options.repeat ?? c.repetitions }));
  const total = cases.reduce((a, c) => a + 3 * (c.repetitions ?? 5), 0);
  const showBar = !options.json && process.stderr.isTTY;
  const bar = showBar ? new cliProgress.SingleBar({ format: 'bench {bar} {value}/{total} runs | {case}', stream: process.stderr }, cliProgress.Presets.shades_classic) : undefined;
  bar?.start(total, 0, { case: '' });
  const results: BenchCaseResult[] = [];
  try {
    for (const c of cases) {
      bar?.update({ case: c.name });
      if (!showBar && !options.json) options.stderr(`bench: ${c.name}\n`);
      results.push(await runCase(c, { device: options.device, seed: options.seed, partition: options.partition, onRun: () => bar?.increment() }));
    }
  } finally {
    bar?.stop();
  }
  const info = runtimeInfo();
  const report: BenchReport = {
    environment: { ...info, device: options.device, node: process.version, cpus: require('os').cpus().length },
    cases: results,
    targets: evaluateTargets(results),
    passed: true,
  };
  report.passed = report.targets.every((t) => t.passed);
  options.stdout((options.json ? JSON.stringify(report, null, 2) : formatBenchTable(report)) + '\n');
  return report;
}
