// `torchgraph bench` and `npm run bench`: which cases (the standard suite, built-in models on
// their example inputs, model files with --input specs), a progress bar on a terminal, and the
// table or JSON. Each case is measured by lib/pipeline/bench.ts.
import * as cliProgress from 'cli-progress';
import * as os from 'os';
import { ensureModel, MODEL_NAMES, type ModelName } from './models';
import { runtimeInfo } from '../torchscript/runtime-info';
import type { Partitioner } from '../pipeline/prepare';
import { evaluateTargets, formatBenchTable, runCase, type BenchCase, type BenchCaseResult, type BenchReport } from '../pipeline/bench';
import { builtinFile } from './cli/model';
import { parseInputSpec, readSpecFile } from './cli/input-spec';

/** A case before its model is resolved to a file: `model` is a built-in name or a path. */
export type SuiteCase = Omit<BenchCase, 'file'>;

export const STANDARD_SUITE: SuiteCase[] = [
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
  /** No progress on stderr. */
  quiet?: boolean;
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  /** Fusion groups for the fused graph (default: the decomposition's own attention groups). */
  partition?: Partitioner;
  /** Cases to run instead of `models` (e.g. the real-model corpus). */
  cases?: SuiteCase[];
}

export async function runBench(options: RunBenchOptions): Promise<BenchReport> {
  let cases = options.cases ?? STANDARD_SUITE;
  if (!options.cases && options.models.length) {
    cases = await Promise.all(options.models.map(async (m): Promise<SuiteCase> => {
      const std = STANDARD_SUITE.find((c) => c.model === m || c.name === m);
      if (std) return std;
      // Other built-in models run on their example inputs unless --input says otherwise.
      if (!options.inputs.length && (MODEL_NAMES as readonly string[]).includes(m)) {
        return { name: m, model: m, inputs: (await ensureModel(m as ModelName)).inputs.map((i) => ({ shape: i.shape, dtype: i.dtype })) };
      }
      if (!options.inputs.length) throw new Error(`bench ${m}: a model file needs --input SPEC`);
      // Specs as validate takes them: SHAPE[:DTYPE] draws seeded random inputs, FILE.npy runs on the file.
      const specs = options.inputs.map(parseInputSpec);
      const arrays = specs.map((p) => (p.kind === 'npy' ? readSpecFile(p) : undefined));
      return {
        name: m, model: m,
        inputs: specs.map((p, i) => (p.kind === 'npy' ? { shape: arrays[i]!.shape, dtype: arrays[i]!.dtype } : { shape: p.shape, dtype: p.dtype })),
        files: specs.map((p) => (p.kind === 'npy' ? p.path : undefined)),
      };
    }));
  }
  cases = cases.map((c) => ({ ...c, warmup: options.warmup ?? c.warmup, repetitions: options.repeat ?? c.repetitions }));
  const total = cases.reduce((a, c) => a + 3 * (c.repetitions ?? 5), 0);
  const showBar = !options.json && !options.quiet && process.stderr.isTTY;
  const bar = showBar ? new cliProgress.SingleBar({ format: 'bench {bar} {value}/{total} runs | {case}', stream: process.stderr }, cliProgress.Presets.shades_classic) : undefined;
  bar?.start(total, 0, { case: '' });
  const results: BenchCaseResult[] = [];
  try {
    for (const c of cases) {
      bar?.update({ case: c.name });
      if (!showBar && !options.json && !options.quiet) options.stderr(`bench: ${c.name}\n`);
      results.push(await runCase({ ...c, file: await modelFile(c.model) }, { device: options.device, seed: options.seed, partition: options.partition, onRun: () => bar?.increment() }));
    }
  } finally {
    bar?.stop();
  }
  const info = runtimeInfo();
  const report: BenchReport = {
    environment: { ...info, device: options.device, node: process.version, cpus: os.cpus().length },
    cases: results,
    targets: evaluateTargets(results),
    passed: true,
  };
  report.passed = report.targets.every((t) => t.passed);
  options.stdout((options.json ? JSON.stringify(report, null, 2) : formatBenchTable(report)) + '\n');
  return report;
}
