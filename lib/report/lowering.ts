// What the fused graph's groups became, grouped for display: per kind, how many were lowered
// and to what, then each distinct reason for the rest once, with its count.
import type { LoweringOutcome, LoweringReport } from './types';
import { CONV2D_KIND, LINEAR_KIND } from '../core/ops/own-schemas';

export interface LoweringLine {
  kind: string;
  /** null for kinds that have no lowering here (all their groups stay unfused). */
  lowered: number | null;
  total: number;
  to?: string;
  unfused: { reason: string; count: number }[];
}

/** The run columns of validate's table, in every format (terminal, HTML, docs). The report's
 * JSON keeps its own field names (graphs.standard/decomposed/fused, runs.original/unfused/fused). */
export const RUN_COLUMNS = ['original', 'unfused', 'fused'] as const;

/** The one line under the table that says what the columns are. */
export const RUN_CAPTION = 'original = the model as given; unfused = attention decomposed into explicit ops; '
  + 'fused = fusion groups lowered to fused ops';

/** A kind of group with no lowering here, as information: its groups were found and run as they are. */
export function notLoweredText(kind: string, groups: number, reason: string): string {
  return `${kind}: ${groups} group${groups === 1 ? '' : 's'} found, run as ${groups === 1 ? 'it is' : 'they are'} (${reason})`;
}

/** The lines after the kinds, in every format: activations written out as arithmetic, and ops made in place. */
export function loweringNotes(lw: LoweringReport): string[] {
  const out = Object.entries(lw.writtenOutActivations ?? {})
    .map(([form, n]) => `${form} written out as arithmetic: ${n} -> one ATen op each`);
  if (lw.inPlaceOps) out.push(`in place where the input dies: ${lw.inPlaceOps} activations and residual adds`);
  return out;
}

/** Whether the packed linears run on torchgraph's own GEMM (their outcomes say which op they run as). */
const onOwnGemm = (outcomes: LoweringOutcome[] | undefined) => (outcomes ?? []).some((o) => o.op === LINEAR_KIND);

/** "; 12 with their activation as oneDNN's post-op (gelu tanh)": the lowered ops that took an activation over. */
function postOpsNote(outcomes: LoweringOutcome[]): string {
  const by = new Map<string, number>();
  for (const o of outcomes) if (o.lowered && o.postOp) by.set(o.postOp, (by.get(o.postOp) ?? 0) + 1);
  if (!by.size) return '';
  const n = [...by.values()].reduce((a, b) => a + b, 0);
  const whose = onOwnGemm(outcomes) ? 'the GEMM\'s' : 'oneDNN\'s';
  return `; ${n} with the activation after it as ${whose} post-op (${[...by].map(([p, c]) => (by.size > 1 ? `${c} ${p}` : p)).join(', ')})`;
}

/** The convolutions' target: oneDNN's pointwise kernels, the stems on ours where they ran there. */
function convolutionsTo(outcomes: LoweringOutcome[]): string {
  const ours = outcomes.filter((o) => o.lowered && o.op === CONV2D_KIND).length;
  const onednn = 'oneDNN pointwise convolution on a prepacked weight, channels last';
  const stems = 'torchgraph::conv2d on a weight packed once, reading each window where it lies, channels last';
  if (!ours) return onednn;
  return ours === outcomes.filter((o) => o.lowered).length ? stems : `${onednn}; ${ours} with few input channels: ${stems}`;
}

export function describeLowering(lw: LoweringReport): LoweringLine[] {
  const kinds: [string, LoweringOutcome[], string][] = [
    ['attention cores', lw.attentionCores, 'scaled_dot_product_attention'],
    ['parallel projections', lw.projections, 'one GEMM each'],
    ['linear + activation', lw.linearActs, '_addmm_activation'],
    ['convolution + batch norm', lw.foldedBatchNorms ?? [], 'the batch norm folded into the convolution'],
    ['linear', lw.packedLinears ?? [], onOwnGemm(lw.packedLinears) ? 'torchgraph::linear on a weight packed once for its own GEMM'
    : 'mkldnn::_linear_pointwise on a weight oneDNN reordered once'],
    ['convolution [+ residual add] [+ activation]', lw.convolutions ?? [], convolutionsTo(lw.convolutions ?? [])],
    ['residual add + norm', lw.addNorms ?? [], 'torchgraph::add_layer_norm / add_rms_norm, one pass per row'],
    ['bias + GELU', lw.biasGelus ?? [], 'torchgraph::bias_gelu'],
    ['max pool', lw.maxPools ?? [], 'torchgraph::max_pool2d, no indices'],
  ];
  const out: LoweringLine[] = [];
  for (const [kind, outcomes, to] of kinds) {
    if (!outcomes.length) continue;
    const why = new Map<string, number>();
    for (const o of outcomes) if (!o.lowered) why.set(o.reason ?? 'no reason given', (why.get(o.reason ?? 'no reason given') ?? 0) + 1);
    out.push({
      kind, lowered: outcomes.filter((o) => o.lowered).length, total: outcomes.length, to: to + postOpsNote(outcomes),
      unfused: [...why].map(([reason, count]) => ({ reason, count })),
    });
  }
  for (const n of lw.notLowered) {
    out.push({ kind: n.kind, lowered: null, total: n.groups, unfused: [{ reason: n.reason, count: n.groups }] });
  }
  return out;
}

/** What holds the fused graph's extra weight bytes: the lowerings' own counts (each outcome's heldBytes), in the order
 * they replace one another (a concatenated projection weight that oneDNN then packs is held once, as the packed copy). */
export function heldWeights(lw: LoweringReport): { what: string; count: number; bytes: number }[] {
  const kinds: [LoweringOutcome[] | undefined, string][] = [
    [lw.packedLinears, onOwnGemm(lw.packedLinears) ? 'linear weights packed once (torchgraph::linear)'
    : 'linear weights oneDNN reordered once (mkldnn::_linear_pointwise)'],
    [lw.convolutions, 'convolution weights oneDNN prepacked, channels last'],
    [lw.foldedBatchNorms, 'convolution weights with the batch norm folded in'],
    [lw.projections, 'projection weights concatenated once for one GEMM'],
  ];
  let left = lw.heldWeightBytes;
  const out: { what: string; count: number; bytes: number }[] = [];
  for (const [outcomes, what] of kinds) {
    const held = (outcomes ?? []).filter((o) => o.lowered && (o.heldBytes ?? 0) > 0);
    const bytes = Math.min(left, held.reduce((s, o) => s + o.heldBytes!, 0));
    if (bytes <= 0) continue;
    out.push({ what, count: held.length, bytes });
    left -= bytes;
  }
  if (left > 0) out.push({ what: 'other weights the lowerings made', count: 0, bytes: left });
  return out;
}
