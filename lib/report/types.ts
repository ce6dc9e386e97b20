// The ValidationReport: what `torchgraph validate` finds, as data. The terminal table, the
// `--json` output and the HTML report are all renderings of this one object.
//
// The JSON contract (what `torchgraph validate --json` prints, one object on stdout) is the
// REQUIRED part below: `model`, `attention`, `graphs`, `runs`, `passed`, with exactly these
// names and meanings. Scripts may rely on it; it only grows (new optional fields), and a change
// that breaks it bumps `format`. Everything marked "extra" is optional and may be absent (older
// pipelines, or a stage that does not compute it); consumers must tolerate its absence.
//
// Units: bytes are plain byte counts (not MB/MiB); times are milliseconds; FLOPs count one
// multiply-add as 2 FLOPs. Numbers that cannot be measured or compared are written as JSON
// `null` (NaN and infinities have no JSON spelling): a `null` maxAbsDiff means the outputs could
// not be compared (different shapes or dtypes, or a NaN), and its check fails. A peak of -1
// means "not measured" (the runtime could not count memory on that device).
import type { LoweringOutcome, LoweringReport } from '../fusion/lower-fused';

export type { LoweringOutcome, LoweringReport };

/** Value of `format` in every report this version writes. */
export const REPORT_FORMAT = 'torchgraph.validate/1';

/**
 * Node count per kind. KIND is the node kind (`aten::linear`, `prim::If`, ...); a call of a
 * submodule's forward that the standard view keeps whole counts as `call_module:<ClassName>`
 * (e.g. `call_module:MultiheadAttention`), another method as `call_method:<ClassName>.<name>`.
 * Nodes nested in blocks (prim::If, prim::Loop) are counted too.
 */
export type OpCounts = Record<string, number>;

export interface GraphStats {
  /** Every node of the graph, nested blocks included (graph inputs and the return are not nodes). */
  nodes: number;
  ops: OpCounts;
  /** extra: nodes that implement attention: one per attention op or module call in the standard
   * graph; the explicit ops the decomposition emitted in the decomposed and fused graphs. */
  attentionOps?: number;
  /** extra: estimated FLOPs of one forward (see the analysis for the formulas). */
  flops?: number;
}

export interface FusedGraphStats extends GraphStats {
  /** Fusion groups of two or more nodes. */
  groups: number;
  /** extra: average number of nodes per fusion group. */
  averageGroupSize?: number;
  /** extra: what each group was lowered to, or why it was not. */
  lowering?: LoweringReport;
}

/** The original model (module.forward as exported), run as-is. */
export interface OriginalRun {
  /** Measured peak of live tensor storage above the level before the run, in bytes (-1: not measured). */
  peakBytes: number;
  /** Median wall time of one forward, in ms. */
  medianMs: number;
  /** extra: the liveness estimate for the standard graph, in bytes, when the analysis gives one. */
  estimatedPeakBytes?: number;
}

/** A rewritten graph (unfused = decomposed, fused = decomposed then fused) run and compared. */
export interface ComparedRun {
  /** Measured peak, as for OriginalRun.peakBytes. */
  peakBytes: number;
  /** The liveness estimate on the same basis as peakBytes, in bytes. */
  estimatedPeakBytes: number;
  medianMs: number;
  /** Max |this output - original output| over all output elements; null when not comparable. */
  maxAbsDiff: number | null;
}

export interface SkippedAttention {
  /** Where the attention is: module path, or the node's description when it has none. */
  node: string;
  /** Why the decomposition left it intact. */
  reason: string;
}

export interface AttentionSummary {
  /** Attentions found in the model (module calls, native MHA, encoder-layer fast paths, SDPA). */
  found: number;
  /** Of those, turned into explicit ops. */
  decomposed: number;
  /** Those left intact, each with its reason. found = decomposed + skipped.length. */
  skipped: SkippedAttention[];
  /**
   * extra: the attention modules the sites belong to (a scripted layer's fast and slow path are
   * two sites of one module), and how many of them had every site decomposed.
   */
  modules?: { found: number; decomposed: number };
}

// ---- extras (optional) -----------------------------------------------------------------------

export interface ReportCheck {
  /** Short stable identifier, e.g. "unfused-matches", "fused-matches", "attention-decomposed". */
  name: string;
  passed: boolean;
  /** One human-readable line, e.g. "max abs diff 1.2e-6 <= 1e-4". */
  detail: string;
}

/** How an attention appeared in the model. */
export type AttentionForm = 'module' | 'native_mha' | 'encoder_layer' | 'sdpa';

export interface AttentionDetail {
  /** Module path (e.g. "encoder.layers.encoder_layer_0.self_attention") or node description. */
  id: string;
  form: AttentionForm;
  heads?: number;
  embedDim?: number;
  batchFirst?: boolean;
  /** Explicit ops this attention became (0 when skipped). */
  opsExposed: number;
  decomposed: boolean;
  /** Why it was skipped, when it was. */
  reason?: string;
  /** Max abs diff of this attention's core output, fused against unfused (lib/pipeline/attention-diffs.ts); differences
   * from earlier layers included. Absent where the core was not found in both graphs. */
  maxAbsDiff?: number | null;
}

/** One step of a memory timeline: live bytes just after node `index` ran. */
export interface MemoryPoint {
  /** Position in execution order (0-based). */
  index: number;
  /** Node label, e.g. "aten::matmul" or "group 12 (attention core)". */
  node: string;
  liveBytes: number;
}

export interface MemoryTimelines {
  /** The decomposed graph, each value freed after its last use. */
  unfused: MemoryPoint[];
  /** The fused graph (a group's internal values never materialise). */
  fused: MemoryPoint[];
  /** Bytes of weights, counted apart from the timelines (not included in liveBytes). */
  weightsBytes?: number;
  /** Bytes of weights the fused graph holds on top of the model's: projection weights stored
   * separately in the model, concatenated once for one GEMM. Apart from the timelines too. */
  fusedExtraWeightsBytes?: number;
}

export type DrawingNodeKind = 'op' | 'input' | 'output' | 'summary';

export interface DrawingNode {
  id: string;
  /** Short text shown in the box, e.g. "aten::linear" or "… 412 nodes". */
  label: string;
  kind: DrawingNodeKind;
  /** Fusion group id; nodes sharing one are drawn in one colour. */
  group?: string;
  /** Attention region id (module path); nodes sharing one are boxed and labelled together. */
  attention?: string;
  /** Longer text for the tooltip (outputs with their shapes and dtypes, module path, ...). */
  title?: string;
  /** The first output's shape, drawn under the label, e.g. "[4, 196, 768]". */
  shape?: string;
  /** The lowering that emitted this op (fused drawing): "attention_core", "packed_linear", ... */
  lowered?: string;
  /** Mean time of one call of this op's kind in the run, from libtorch's profile (timing.opTimes). */
  kindMs?: number;
}

export interface DrawingEdge {
  from: string;
  to: string;
}

/**
 * A graph small enough to draw (a few hundred nodes at most): typically the decomposed graph
 * around one attention block, with the rest collapsed into `summary` nodes.
 */
export interface GraphDrawing {
  /** What is drawn, e.g. "decomposed graph, first attention block (encoder.layers.encoder_layer_0.self_attention)". */
  caption: string;
  nodes: DrawingNode[];
  edges: DrawingEdge[];
  /** Nodes of the whole graph, and how many of them are drawn individually. */
  totalNodes?: number;
  drawnNodes?: number;
}

export interface ReportInput {
  name: string;
  shape: number[];
  dtype: string;
  /** Where it came from: "spec 1x3x224x224 (seed 0)", "file x.npy", "example input". */
  source: string;
}

export interface Environment {
  torchVersion?: string;
  /** The device the runs used, e.g. "cpu" or "cuda:0". */
  device?: string;
  node?: string;
  platform?: string;
  torchgraphVersion?: string;
  /** Wall time of each pipeline stage, in ms (load, standard, decompose, partition, run, total). */
  timings?: Record<string, number>;
  /** ISO time the report was made. */
  createdAt?: string;
}

// ---- the report ------------------------------------------------------------------------------

/** extra: how the times were taken (lib/pipeline/warm-up.ts, lib/pipeline/machine-load.ts). */
export interface TimingInfo {
  /** Warm-up runs per graph before timing, and whether its time had settled by then. */
  warmUp: Record<'original' | 'unfused' | 'fused', { runs: number; settled: boolean }>;
  /** The 1-minute load average when timing began, and the cores. */
  loadAverage: number;
  cores: number;
  /** The widest (max - min) / median of one graph's timed runs. */
  spread: number;
  /** Why the times cannot be trusted, when they cannot. */
  warning?: string;
  /** Set when every fused run was slower than every original run, the medians over 5% apart (ranSlower): the fused graph is slower here. */
  fusedSlower?: string;
  /**
   * With fusedSlower: the op kinds whose time grew most against the unfused graph, profiled on the
   * run, and the lowering that emitted each.
   */
  slowerOps?: { kind: string; fusedMs: number; unfusedMs: number; loweredBy: string[] }[];
  /**
   * Every op kind of the fused graph with its time per run (libtorch's profile of each top-level op, all calls together,
   * median of a few runs), beside the same kind's time in the unfused graph, and the lowerings that emitted it.
   */
  opTimes?: OpTime[];
}

/** One op kind's time in the fused and the unfused graph (lib/pipeline/slower-ops.ts). */
export interface OpTime {
  kind: string;
  fusedMs: number;
  unfusedMs: number;
  /** Calls per run in the fused graph. */
  calls?: number;
  loweredBy: string[];
}

export interface ValidationReport {
  /** extra: REPORT_FORMAT of the writer. */
  format?: string;
  /** The model as given: a built-in name ("vit_b_16") or a file path. */
  model: string;
  attention: AttentionSummary;
  graphs: {
    standard: GraphStats;
    decomposed: GraphStats;
    fused: FusedGraphStats;
  };
  runs: {
    original: OriginalRun;
    unfused: ComparedRun;
    fused: ComparedRun;
  };
  /** True when every check passed (see `checks` for which ones ran). */
  passed: boolean;

  /** extra: the max abs diff allowed for a run to count as equal to the original. */
  tolerance?: number;
  /** extra: what decided `passed`. */
  checks?: ReportCheck[];
  /** extra: warm-up and machine load behind the times. */
  timing?: TimingInfo;
  /** extra: the inputs the runs used, in order. */
  inputs?: ReportInput[];
  /** extra: one entry per attention found. */
  attentions?: AttentionDetail[];
  /** extra: estimated live bytes over execution order. */
  memory?: MemoryTimelines;
  /** extra: the graph to draw in the HTML report (the unfused graph, its fusion groups coloured). */
  drawing?: GraphDrawing;
  /** extra: the fused graph, drawn over the same window: fused ops where the groups were. */
  fusedDrawing?: GraphDrawing;
  environment?: Environment;
}

/** Memory reduction as the analysis defines it: (unfused peak - fused peak) / unfused peak, or
 * undefined when either peak is unknown (negative) or the unfused peak is zero. */
/**
 * What each graph holds in all while it runs, in bytes: the module's weights, the weights the
 * graph holds besides (the fused graph's concatenated, folded and prepacked copies), and its
 * measured peak (-1 where the peak was not measured). Undefined without the weights' size.
 */
export function memoryTotals(report: ValidationReport): { original: number; unfused: number; fused: number } | undefined {
  const w = report.memory?.weightsBytes;
  if (w === undefined) return undefined;
  const r = report.runs;
  const total = (peak: number, held = 0) => (peak >= 0 ? w + held + peak : -1);
  return {
    original: total(r.original.peakBytes),
    unfused: total(r.unfused.peakBytes),
    fused: total(r.fused.peakBytes, report.memory?.fusedExtraWeightsBytes ?? 0),
  };
}

export function memoryReduction(unfusedPeak: number | undefined, fusedPeak: number | undefined): number | undefined {
  if (unfusedPeak === undefined || fusedPeak === undefined) return undefined;
  if (!(unfusedPeak > 0) || fusedPeak < 0) return undefined;
  return (unfusedPeak - fusedPeak) / unfusedPeak;
}
