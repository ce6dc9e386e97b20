// Where a fused graph spends its time: the fused and unfused graphs profiled per operator kind
// (libtorch's timing of each top-level op, medians of a few runs), each kind with the lowering that
// emitted it (the report's time per op kind); when the fused graph ran slower than the original,
// the kinds whose time grew most against the unfused graph. Measured on the run, so the report names causes instead of guessing them.
import type { Graph } from '../core/ir';
import type { NativeGraph, NativeValue } from '../torchscript/binding';
import { median } from './median';
import { runDiscardingOutputs, type RunMeasurement } from './interleaved-runs';
import type { OpTime } from '../report/types';

export interface SlowerOp {
  /** The operator, as libtorch names it (aten::scaled_dot_product_attention, ...). */
  kind: string;
  /** Its total time per run of the fused graph, and of the unfused graph (0 when absent there). */
  fusedMs: number;
  unfusedMs: number;
  /** The lowerings that emitted ops of this kind into the fused graph (empty: kept from the unfused graph). */
  loweredBy: string[];
}

/** A kind's time per run and its calls per run (median over the runs). */
interface KindTime { ms: number; calls: number }

async function profileByKind(g: NativeGraph, args: NativeValue[], runs: number): Promise<Map<string, KindTime>> {
  const results: RunMeasurement[] = [];
  for (let i = 0; i < runs; i++) results.push(await runDiscardingOutputs(() => g.run(args, { profile: true })));
  const kinds = new Set(results.flatMap((r) => Object.keys(r.opTimes ?? {})));
  return new Map([...kinds].map((k) => [k, {
    ms: median(results.map((r) => r.opTimes?.[k]?.ms ?? 0)), calls: median(results.map((r) => r.opTimes?.[k]?.calls ?? 0)),
  }]));
}

/** Every op kind of the fused graph, its time per run beside the unfused graph's, slowest first. */
export async function profileOps(graphs: { fused: NativeGraph; unfused: NativeGraph }, fusedGraph: Graph, args: NativeValue[],
  opts: { runs?: number } = {}): Promise<OpTime[]> {
  const runs = opts.runs ?? 3;
  const fused = await profileByKind(graphs.fused, args, runs);
  const unfused = await profileByKind(graphs.unfused, args, runs);
  const loweredBy = new Map<string, Set<string>>();
  for (const n of fusedGraph.allNodes()) {
    const by = (n.meta.fused as { kind?: string } | undefined)?.kind;
    if (!by) continue;
    const set = loweredBy.get(n.kind) ?? new Set<string>();
    set.add(by);
    loweredBy.set(n.kind, set);
  }
  return [...fused]
    .map(([kind, t]) => ({
      kind, fusedMs: t.ms, unfusedMs: unfused.get(kind)?.ms ?? 0, calls: t.calls, loweredBy: [...(loweredBy.get(kind) ?? [])],
    }))
    .sort((a, b) => b.fusedMs - a.fusedMs);
}

/** The op kinds whose time grew most from the unfused graph to the fused one (at most `top`, growth first). */
export function slowerOps(ops: readonly OpTime[], opts: { top?: number } = {}): SlowerOp[] {
  return ops
    .filter((o) => o.fusedMs > o.unfusedMs)
    .map((o) => ({ kind: o.kind, fusedMs: o.fusedMs, unfusedMs: o.unfusedMs, loweredBy: o.loweredBy }))
    .sort((a, b) => (b.fusedMs - b.unfusedMs) - (a.fusedMs - a.unfusedMs))
    .slice(0, opts.top ?? 3);
}

/** One line: "aten::X +0.12 ms (0.30 against 0.18 ms unfused; from the attention_core lowering), ...". */
export function describeSlowerOps(ops: readonly SlowerOp[]): string {
  if (!ops.length) {
    return 'no operator kind took longer than in the unfused graph: '
      + 'the time is lost to the decomposition itself (the original\'s fused ops)';
  }
  const describe = (o: SlowerOp) => `${o.kind} +${(o.fusedMs - o.unfusedMs).toFixed(3)} ms `
    + `(${o.fusedMs.toFixed(3)} against ${o.unfusedMs.toFixed(3)} ms unfused`
    + `${o.loweredBy.length ? `; from the ${o.loweredBy.join(' and ')} lowering` : ''})`;
  return ops.map(describe).join(', ');
}
