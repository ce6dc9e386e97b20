// `torchgraph bench` and `npm run bench`: which cases (ViT-B/16 for the CLI, the project's
// standard suite for npm run bench, built-in models on their example inputs, model files with
// --input specs, or given cases such as the corpus'), a progress bar on a terminal, and the table
// or JSON. Each case is measured by lib/pipeline/bench.ts, with its anchors (lib/app/anchors.ts)
// when asked; only the project's run (`project`) judges its targets.
import * as cliProgress from 'cli-progress';
import * as os from 'os';
import { TorchGraphError } from '../core/errors';
import { ensureModel, MODEL_NAMES, type ModelName } from './models';
import { runtimeInfo } from '../torchscript/runtime-info';
import type { FuseOptions, Partitioner } from '../pipeline/prepare';
import {
  evaluateTargets, formatBenchTable, runCase, type AblatableLowering, type BenchCase, type BenchCaseResult, type BenchReport,
} from '../pipeline/bench';
import { formatRunsTable } from '../pipeline/bench-runs';
import { builtinFile, orderedSpecs, programSignature, withoutDefaults } from './cli/model';
import { readSpecFile } from './cli/input-spec';
import { startAnchors, type AnchorMode, type AnchorProcess, type AnchorTarget } from './anchors';
import { writeFileAnchorInputs } from './file-anchors';
import type { ExternalRunner } from '../pipeline/compare';

/** Whose anchors a case times (bench --anchors): a built-in model, or a corpus fixture (its
 * manifest.json, with the corpus libraries on `pythonPath`). */
export type CaseAnchor = { builtin: string } | { manifest: string; pythonPath: string };

/** A case before its model is resolved to a file: `model` is a built-in name or a path. `anchor`:
 * whose anchors to time (built-in models need none: their name says it). */
export type SuiteCase = Omit<BenchCase, 'file'> & {
  anchor?: CaseAnchor;
  /** More runners timed in the same repetitions, started on the case's model file and closed after it (e.g. onnxruntime-node). */
  startExternal?: (file: string) => Promise<{ runners: ExternalRunner[]; close(): void }>;
};

export const STANDARD_SUITE: SuiteCase[] = [
  { name: 'mha_demo', model: 'mha_demo', inputs: [{ shape: [4, 196, 768], dtype: 'float32' }], repetitions: 9 },
  { name: 'vit_b_16 batch 1', model: 'vit_b_16', inputs: [{ shape: [1, 3, 224, 224], dtype: 'float32' }], repetitions: 15 },
  { name: 'vit_b_16 batch 8', model: 'vit_b_16', inputs: [{ shape: [8, 3, 224, 224], dtype: 'float32' }], repetitions: 3, warmup: 1 },
  { name: 'attention L=2048', model: 'attention_2048', inputs: [{ shape: [1, 2048, 768], dtype: 'float32' }], repetitions: 5 },
  {
    name: 'attention core L=2048', model: 'attention_core_2048',
    inputs: [0, 1, 2].map(() => ({ shape: [1, 12, 2048, 64], dtype: 'float32' as const })), repetitions: 5,
  },
];

/** `torchgraph bench` without a model: the README's model, ViT-B/16, at batch 1. */
export const CLI_DEFAULT_CASES: SuiteCase[] = STANDARD_SUITE.filter((c) => c.name === 'vit_b_16 batch 1');

/** A built-in model's file (the CLI exports only the variant it runs), or the path as given. */
async function modelFile(model: string, runVariantOnly: boolean): Promise<string> {
  if (MODEL_NAMES.includes(model)) return builtinFile(await ensureModel(model as ModelName, { runVariantOnly }));
  return model;
}

export interface RunBenchOptions {
  /** Built-in models or model files (.pt, .pt2); empty: ViT-B/16 (the standard suite with `project`). */
  models: string[];
  /** The project's benchmark (npm run bench): the standard suite by default, every variant of a
   * built-in model exported, the targets judged (a miss fails the run) and the suite's table. */
  project?: boolean;
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
  /** Time PyTorch eager and torch.compile (inductor, with and without freezing) in the same repetitions. */
  anchors?: boolean;
  /** Which anchors (default: every one of ANCHOR_MODES). */
  anchorModes?: readonly AnchorMode[];
  /** Lowerings on or off, for measuring each (prepareGraphs' options). */
  fuse?: FuseOptions;
  /** Lowerings also timed off, in the same repetitions (a "fused, NAME off" column each). */
  ablate?: readonly AblatableLowering[];
}

/** The cases to run: the given ones, the standard suite, or one per named model. */
async function resolveCases(options: RunBenchOptions): Promise<SuiteCase[]> {
  if (options.cases) return options.cases;
  if (!options.models.length) return options.project ? STANDARD_SUITE : CLI_DEFAULT_CASES;
  return Promise.all(options.models.map(async (m): Promise<SuiteCase> => {
    // A suite model keeps its case (repetitions, inputs) unless --input gives other inputs.
    const std = STANDARD_SUITE.find((c) => c.model === m || c.name === m);
    if (std && !options.inputs.length) return std;
    // Other built-in models run on their example inputs unless --input says otherwise.
    if (!options.inputs.length && MODEL_NAMES.includes(m)) {
      return { name: m, model: m, inputs: (await ensureModel(m as ModelName)).inputs.map((i) => ({ shape: i.shape, dtype: i.dtype })) };
    }
    // A torch.export program's float inputs of fixed shape default to its example's shapes, as in validate.
    const program = options.inputs.length ? undefined : await programSignature(m, true);
    const texts = options.inputs.length ? options.inputs : program?.defaults ?? [];
    if (!texts.length) {
      throw new TorchGraphError('ERR_INVALID_ARG',
        `bench ${m}: a model file needs --input SPEC (one per forward() argument, e.g. --input 1x3x224x224)${withoutDefaults(program)}`);
    }
    // Specs as validate takes them: SHAPE[:DTYPE][:FILL] draws seeded random inputs, FILE.npy runs
    // on the file; NAME=SPEC ones are put in forward's order.
    const { specs } = await orderedSpecs(texts, MODEL_NAMES.includes(m) ? await modelFile(m, !options.project) : m);
    const arrays = specs.map((p) => (p.kind === 'npy' ? readSpecFile(p) : undefined));
    return {
      name: m, model: m,
      inputs: specs.map((p, i) => (p.kind === 'npy'
        ? { shape: arrays[i]!.shape, dtype: arrays[i]!.dtype }
        : { shape: p.shape, dtype: p.dtype, ...(p.fill ? { fill: p.fill } : {}) })),
      files: specs.map((p) => (p.kind === 'npy' ? p.path : undefined)),
    };
  }));
}

/** The anchors of a rebuilt model (its own, or its built-in model's), if it has any. */
function rebuiltTarget(anchor: CaseAnchor | undefined, { model, inputs }: SuiteCase, file: string): AnchorTarget | undefined {
  const a = anchor ?? (MODEL_NAMES.includes(model) ? { builtin: model } : undefined);
  return a && 'builtin' in a ? { builtin: a.builtin, file, inputs } : a;
}

/** The anchors of case `c` (its model's file `file`) started, on CPU: a built-in model or a corpus
 * fixture rebuilt in Python, or (torchgraph bench) a user's file run as it is, on the inputs this
 * bench runs it on. */
async function caseAnchors(
  anchor: CaseAnchor | undefined, c: Omit<SuiteCase, 'anchor'>, file: string, options: RunBenchOptions,
): Promise<{ anchors: AnchorProcess; close(): void } | undefined> {
  if (!options.anchors) return undefined;
  if (options.device !== 'cpu') {
    if (!options.quiet) options.stderr(`bench: ${c.name}: no anchors on ${options.device} (they run on CPU)\n`);
    return undefined;
  }
  const rebuilt = rebuiltTarget(anchor, c, file);
  if (rebuilt) {
    const anchors = await startAnchors(rebuilt, options.anchorModes);
    return { anchors, close: () => anchors.close() };
  }
  if (options.project) {
    // The suite's anchors are what a PyTorch user would run: the model's own class, rebuilt.
    const why = "the suite's rebuild built-in models and corpus transformers classes";
    if (!options.quiet) options.stderr(`bench: ${c.name}: no anchors (${why})\n`);
    return undefined;
  }
  const written = await writeFileAnchorInputs({ ...c, file }, options.seed);
  try {
    const anchors = await startAnchors(written.target, options.anchorModes);
    return { anchors, close: () => { anchors.close(); written.remove(); } };
  } catch (e) {
    written.remove();
    throw e;
  }
}

function describeAnchors(name: string, a: AnchorProcess): string {
  const diffs = Object.entries(a.maxAbsDiffs).map(([m, d]) => `${m} ${d.toExponential(1)}`).join(', ');
  const lines = [`bench: ${name}: anchors ready (eager max abs diff ${a.eagerMaxAbsDiff?.toExponential(2) ?? 'n/a'}; `
    + `each mode's: ${diffs}; compile s: ${JSON.stringify(a.compileSeconds)})`];
  for (const [mode, why] of Object.entries(a.skipped)) lines.push(`  ${mode} skipped: ${why}`);
  return lines.join('\n') + '\n';
}

/** One case, with its anchors timed in the same repetitions. */
async function runWithAnchors(
  { anchor, startExternal, ...c }: SuiteCase, options: RunBenchOptions, onRun: () => void,
): Promise<BenchCaseResult> {
  const file = await modelFile(c.model, !options.project);
  const started = await caseAnchors(anchor, c, file, options);
  const anchors = started?.anchors;
  const extra = await startExternal?.(file).catch((e: unknown) => { started?.close(); throw e; });
  try {
    if (anchors && !options.quiet) options.stderr(describeAnchors(c.name, anchors));
    const r = await runCase({ ...c, file }, {
      device: options.device, seed: options.seed, partition: options.partition, onRun,
      external: [...(anchors?.runners ?? []), ...(extra?.runners ?? [])],
      fuse: options.fuse, ablate: options.ablate,
    });
    if (!anchors) return r;
    const { compileSeconds, maxAbsDiffs, eagerMaxAbsDiff, routes, skipped } = anchors;
    const eager = eagerMaxAbsDiff !== undefined ? { eagerMaxAbsDiff } : {};
    return { ...r, anchors: { compileSeconds, maxAbsDiffs, ...eager, routes, skipped } };
  } finally {
    started?.close();
    extra?.close();
  }
}

export async function runBench(options: RunBenchOptions): Promise<BenchReport> {
  const cases = (await resolveCases(options))
    .map((c) => ({ ...c, warmup: options.warmup ?? c.warmup, repetitions: options.repeat ?? c.repetitions }));
  let gemmGflops: number | undefined;
  if (options.anchors) {
    const peak = await startAnchors(undefined);
    try { gemmGflops = await peak.gemmGflops(); } finally { peak.close(); }
  }
  const total = cases.reduce((a, c) => a + 3 * (c.repetitions ?? 5), 0);
  const showBar = !options.json && !options.quiet && process.stderr.isTTY;
  const barOptions = { format: 'bench {bar} {value}/{total} runs | {case}', stream: process.stderr };
  const bar = showBar ? new cliProgress.SingleBar(barOptions, cliProgress.Presets.shades_classic) : undefined;
  bar?.start(total, 0, { case: '' });
  const results: BenchCaseResult[] = [];
  try {
    for (const c of cases) {
      bar?.update({ case: c.name });
      if (!showBar && !options.json && !options.quiet) options.stderr(`bench: ${c.name}\n`);
      results.push(await runWithAnchors(c, options, () => bar?.increment()));
    }
  } finally {
    bar?.stop();
  }
  const info = runtimeInfo();
  const report: BenchReport = {
    environment: {
      ...info, device: options.device, node: process.version, cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown',
    },
    ...(gemmGflops !== undefined ? { gemmGflops } : {}),
    cases: results,
    ...(options.project ? { targets: evaluateTargets(results) } : {}),
    passed: true,
  };
  report.passed = (report.targets ?? []).every((t) => t.passed);
  const table = options.project ? formatBenchTable : formatRunsTable;
  options.stdout((options.json ? JSON.stringify(report, null, 2) : table(report)) + '\n');
  return report;
}
