// The validation run: load, standard view, decompose attention, partition, run the three graphs,
// and turn what each stage says into a ValidationReport. The stages themselves come from a
// ValidationPipeline (lib/pipeline/pipeline.ts), so this file decides only what is
// checked and how the report is assembled.
import type { Graph, Node } from '../core/ir';
import type { Module } from '../torchscript/module';
import type { Tensor } from '../torchscript/tensor';
import { drawingFromGraph } from '../report/drawing';
import { formatDiff } from '../report/format';
import { writtenOutAttentions } from '../report/summary';
import { estimateVsMeasuredCheck } from './estimate-check';
import { graphStats, metaAttention } from '../report/stats';
import { groupKey, nodeGroup } from '../report/inspect';
import {
  REPORT_FORMAT,
  type AttentionDetail, type AttentionSummary, type Environment, type FusedGraphStats, type GraphDrawing, type GraphStats,
  type MemoryTimelines, type OpTime, type ReportCheck, type ReportInput, type TimingInfo, type ValidationReport,
} from '../report/types';

/** A graph a stage produced, with numbers that override or add to graphStats(graph). */
export interface StageGraph {
  graph: Graph;
  stats?: Partial<GraphStats>;
}

export interface DecomposeStage extends StageGraph {
  /** found / decomposed / skipped with reasons. */
  attention: AttentionSummary;
  /** One entry per attention found. */
  attentions?: AttentionDetail[];
  /** The attention (module path) a node of `graph` was emitted for; default: node.meta.attention.id. */
  attentionOf?: (n: Node) => string | undefined;
}

export interface PartitionStage extends StageGraph {
  /** The fused graph (groups lowered to fused ops). */
  graph: Graph;
  stats?: Partial<FusedGraphStats>;
  /** Fusion groups of two or more nodes. */
  groups: number;
  /** Liveness estimates, in bytes, on the same basis as the runtime's measured peaks. */
  estimatedPeakBytes: { unfused: number; fused: number; original?: number };
  memory?: MemoryTimelines;
  /** The fusion group of a node of the decomposed graph, for the drawing. */
  groupOf?: (n: Node) => string | number | undefined;
  /** A ready drawing; otherwise one is made from the decomposed graph with groupOf/attentionOf. */
  drawing?: GraphDrawing;
}

export interface RunMeasure {
  /** Measured peak bytes above the level before the run (-1: not measured). */
  peakBytes: number;
  medianMs: number;
}

export interface RunStage {
  original: RunMeasure;
  unfused: RunMeasure & { maxAbsDiff: number | null };
  fused: RunMeasure & { maxAbsDiff: number | null };
  /** Max abs diff per attention id, when the runtime compared attentions one by one. */
  attentionDiffs?: Record<string, number | null>;
  /** More checks the runtime made. */
  checks?: ReportCheck[];
  /** Warm-up and machine load behind the times. */
  timing?: TimingInfo;
}

export interface RunOptions {
  device: string;
  seed: number;
  /** Print progress (stage names) here. */
  log?: (line: string) => void;
}

/**
 * The stages validate runs. createPipeline() in lib/pipeline/pipeline.ts is the real one; unit
 * tests drive runValidation with fakes. Stages may be sync or async.
 */
export interface ValidationPipeline {
  /** Load a TorchScript file on a device (default: Module.load). */
  load?(file: string, opts: { device: string }): Promise<Module>;
  /** The standard view (leaf modules kept as call_module nodes). */
  standard(model: Module, inputs: Tensor[]): StageGraph | Promise<StageGraph>;
  /** Attention decomposed into explicit ops. */
  decompose(model: Module, standard: Graph, inputs: Tensor[]): DecomposeStage | Promise<DecomposeStage>;
  /** Fusion partition of the decomposed graph, its lowering, and the memory estimates. */
  partition(model: Module, decomposed: Graph, decompose: DecomposeStage, inputs: Tensor[]): PartitionStage | Promise<PartitionStage>;
  /** Run original, unfused and fused on the inputs, compare and measure. */
  run(model: Module, graphs: { standard: Graph; decomposed: Graph; fused: Graph }, inputs: Tensor[], opts: RunOptions): Promise<RunStage>;
  /** Torch version, device name, ... for the report. */
  environment?(model: Module): Partial<Environment>;
  /** Free the model (default: model.dispose()). */
  dispose?(model: Module): void;
}

export interface ValidationOptions {
  /** The model as the user named it (built-in name or path). */
  model: string;
  /** The TorchScript file to load. */
  file: string;
  device: string;
  seed: number;
  /** Max abs diff allowed (default DEFAULT_TOLERANCE). */
  tolerance?: number;
  inputs: Tensor[];
  inputInfo: ReportInput[];
  environment?: Partial<Environment>;
  /** Most nodes drawn individually in the report's graph. */
  drawingMaxNodes?: number;
  log?: (line: string) => void;
}

/** float32 outputs of a rewritten graph agree with the original to about 1e-5 on the test
 * models; 1e-4 leaves room for larger models and other BLAS orders. */
export const DEFAULT_TOLERANCE = 1e-4;

export function diffCheck(name: string, what: string, diff: number | null, tolerance: number): ReportCheck {
  if (diff === null || Number.isNaN(diff)) {
    return { name, passed: false, detail: `${what}: outputs could not be compared (shape, dtype or NaN)` };
  }
  const passed = diff <= tolerance;
  return { name, passed, detail: `${what}: max abs diff ${formatDiff(diff)} ${passed ? '<=' : '>'} ${tolerance}` };
}

/** `writtenOutCores`: attention cores the model already spells as explicit ops (eager attention:
 * matmul, softmax, matmul), found by the partitioner; they need no decomposing. */
export function attentionCheck(a: AttentionSummary, writtenOutCores = 0): ReportCheck {
  if (a.found === 0) {
    const detail = writtenOutCores
      ? `no attention op or module to decompose; ${writtenOutAttentions(writtenOutCores)}`
      : 'no attention found in the model';
    return { name: 'attention-decomposed', passed: true, detail };
  }
  const passed = a.decomposed === a.found;
  const skipped = a.skipped.length ? `; skipped: ${a.skipped.map((s) => `${s.node} (${s.reason})`).join('; ')}` : '';
  const count = a.modules && a.modules.found !== a.found
    ? `${a.modules.decomposed} of ${a.modules.found} attentions decomposed (${a.decomposed} of ${a.found} sites: fast and slow path)`
    : `${a.decomposed} of ${a.found} attentions decomposed`;
  return { name: 'attention-decomposed', passed, detail: `${count}${skipped}` };
}

/** The liveness estimates against the measured peaks; none when a run was not measured. */
export function estimateCheck(estimated: PartitionStage['estimatedPeakBytes'], run: RunStage): ReportCheck[] {
  if (!(run.unfused.peakBytes > 0 && run.fused.peakBytes > 0)) return [];
  return [estimateVsMeasuredCheck(estimated, { unfused: run.unfused.peakBytes, fused: run.fused.peakBytes })];
}

/** NaN (not comparable) becomes null, as in the JSON contract. */
const comparable = (d: number | null): number | null => (d === null || Number.isNaN(d) ? null : d);

/** The report's runs: the measured peaks and times, next to the estimated peaks. */
function reportRuns(run: RunStage, estimated: PartitionStage['estimatedPeakBytes']): ValidationReport['runs'] {
  return {
    original: { peakBytes: run.original.peakBytes, medianMs: run.original.medianMs,
      ...(estimated.original !== undefined ? { estimatedPeakBytes: estimated.original } : {}) },
    unfused: {
      peakBytes: run.unfused.peakBytes, estimatedPeakBytes: estimated.unfused,
      medianMs: run.unfused.medianMs, maxAbsDiff: comparable(run.unfused.maxAbsDiff),
    },
    fused: {
      peakBytes: run.fused.peakBytes, estimatedPeakBytes: estimated.fused,
      medianMs: run.fused.medianMs, maxAbsDiff: comparable(run.fused.maxAbsDiff),
    },
  };
}

/** The fused graph drawn as the unfused one is: fused ops marked with their lowering, groups left as ops coloured, and
 * each op with the mean time of one call of its kind from the run's profile. */
function fusedGraphDrawing(fused: Graph, attentionOf: (n: Node) => string | undefined, opTimes: readonly OpTime[] | undefined,
  maxNodes: number | undefined): GraphDrawing {
  const perCall = new Map((opTimes ?? []).filter((o) => (o.calls ?? 0) > 0).map((o) => [o.kind, o.fusedMs / o.calls!]));
  return drawingFromGraph(fused, {
    groupOf: (n) => { const g = nodeGroup(n); return g ? groupKey(g) : undefined; },
    loweredOf: (n) => (nodeGroup(n)?.lowered ? nodeGroup(n)!.kind : undefined),
    msOf: (n) => perCall.get(n.kind),
    attentionOf, maxNodes,
  });
}

async function timed<T>(timings: Record<string, number>, stage: string, f: () => T | Promise<T>): Promise<T> {
  const t0 = performance.now();
  try {
    return await f();
  } finally {
    timings[stage] = Math.round((performance.now() - t0) * 100) / 100;
  }
}

export async function runValidation(pipeline: ValidationPipeline, opts: ValidationOptions): Promise<ValidationReport> {
  const tolerance = opts.tolerance ?? DEFAULT_TOLERANCE;
  const timings: Record<string, number> = {};
  const log = opts.log ?? (() => {});
  const t0 = performance.now();

  log(`loading ${opts.model}`);
  const model = await timed(timings, 'load', async () => {
    if (pipeline.load) return pipeline.load(opts.file, { device: opts.device });
    // Lazy: the addon loads only when a real model is loaded.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { loadModel } = require('../program/load-model') as typeof import('../program/load-model');
    return loadModel(opts.file, { device: opts.device });
  });
  try {
    log('building the standard view');
    const std = await timed(timings, 'standard', () => pipeline.standard(model, opts.inputs));
    log('decomposing attention');
    const dec = await timed(timings, 'decompose', () => pipeline.decompose(model, std.graph, opts.inputs));
    log('partitioning and fusing');
    const part = await timed(timings, 'partition', () => pipeline.partition(model, dec.graph, dec, opts.inputs));
    log(`running original, unfused and fused on ${opts.device}`);
    const run = await timed(timings, 'run', () => pipeline.run(model,
      { standard: std.graph, decomposed: dec.graph, fused: part.graph }, opts.inputs,
      { device: opts.device, seed: opts.seed, log: opts.log }));
    timings.total = Math.round((performance.now() - t0) * 100) / 100;

    const attentionOf = dec.attentionOf ?? metaAttention;
    const standard: GraphStats = { ...graphStats(std.graph), ...std.stats };
    const decomposed: GraphStats = { ...graphStats(dec.graph, { attentionOf }), ...dec.stats };
    const fused: FusedGraphStats = { ...graphStats(part.graph, { attentionOf }), groups: part.groups, ...part.stats };

    const checks: ReportCheck[] = [
      diffCheck('unfused-matches', 'unfused (decomposed) vs original', run.unfused.maxAbsDiff, tolerance),
      diffCheck('fused-matches', 'fused vs original', run.fused.maxAbsDiff, tolerance),
      attentionCheck(dec.attention, part.stats?.lowering?.attentionCores.length ?? 0),
      ...estimateCheck(part.estimatedPeakBytes, run),
      ...(run.checks ?? []),
    ];

    const attentions = dec.attentions?.map((a) => {
      const d = run.attentionDiffs?.[a.id];
      return d === undefined ? a : { ...a, maxAbsDiff: comparable(d) };
    });
    const drawing = part.drawing ?? drawingFromGraph(dec.graph, {
      groupOf: part.groupOf, attentionOf, maxNodes: opts.drawingMaxNodes,
    });
    const fusedDrawing = fusedGraphDrawing(part.graph, attentionOf, run.timing?.opTimes, opts.drawingMaxNodes);
    const env: Environment = {
      device: opts.device,
      ...opts.environment,
      ...pipeline.environment?.(model),
      timings,
      createdAt: new Date().toISOString(),
    };

    const report: ValidationReport = {
      format: REPORT_FORMAT,
      model: opts.model,
      attention: dec.attention,
      graphs: { standard, decomposed, fused },
      runs: reportRuns(run, part.estimatedPeakBytes),
      passed: checks.every((c) => c.passed),
      tolerance,
      checks,
      ...(run.timing ? { timing: run.timing } : {}),
      inputs: opts.inputInfo,
      ...(attentions ? { attentions } : {}),
      ...(part.memory ? { memory: part.memory } : {}),
      drawing,
      fusedDrawing,
      environment: env,
    };
    return report;
  } finally {
    if (pipeline.dispose) pipeline.dispose(model);
    else (model as { dispose?: () => void }).dispose?.();
  }
}
