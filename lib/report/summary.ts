// What the terminal and the HTML report's summaries share: the table's rows (figure, original,
// unfused, fused) and the attention count, as text.
import { formatBytes, formatDiff, formatFlops, formatInt, formatMs } from './format';
import { memoryTotals, type ValidationReport } from './types';

export function summaryRows(report: ValidationReport): string[][] {
  const { graphs: g, runs: r } = report;
  const totals = memoryTotals(report);
  return [
    ['Graph nodes', formatInt(g.standard.nodes), formatInt(g.decomposed.nodes), formatInt(g.fused.nodes)],
    ['Attention ops', formatInt(g.standard.attentionOps), formatInt(g.decomposed.attentionOps), formatInt(g.fused.attentionOps)],
    ['Fusion groups', '-', '-', formatInt(g.fused.groups) +
      (g.fused.averageGroupSize !== undefined ? ` (avg ${g.fused.averageGroupSize.toFixed(2)})` : '')],
    ['FLOPs', formatFlops(g.standard.flops), formatFlops(g.decomposed.flops), formatFlops(g.fused.flops)],
    ['Peak memory, estimated', formatBytes(r.original.estimatedPeakBytes), formatBytes(r.unfused.estimatedPeakBytes),
      formatBytes(r.fused.estimatedPeakBytes)],
    ['Peak memory, measured', formatBytes(r.original.peakBytes), formatBytes(r.unfused.peakBytes), formatBytes(r.fused.peakBytes)],
    ...(totals
      ? [['Weights + held weights + peak', formatBytes(totals.original), formatBytes(totals.unfused), formatBytes(totals.fused)]]
      : []),
    ['Median time', formatMs(r.original.medianMs), formatMs(r.unfused.medianMs), formatMs(r.fused.medianMs)],
    ['Max abs diff vs original', '-', formatDiff(r.unfused.maxAbsDiff), formatDiff(r.fused.maxAbsDiff)],
  ];
}

/** Attention cores a model spells as explicit ops itself (eager attention), in words. */
export function writtenOutAttentions(cores: number): string {
  return `${cores} attention core${cores === 1 ? '' : 's'} written out as explicit ops in the model (matmul, softmax, matmul)`;
}

/** Attentions counted by module; sites (a scripted layer's fast and slow path) apart when they differ.
 * `writtenOutCores`: the attention cores the partitioner found where no attention op was. */
export function attentionLine(a: ValidationReport['attention'], writtenOutCores = 0): string {
  if (a.found === 0 && writtenOutCores) return `Attentions decomposed: none to decompose (${writtenOutAttentions(writtenOutCores)})`;
  const skipped = a.skipped.length ? ` (${a.skipped.length} skipped)` : '';
  if (!a.modules || a.modules.found === a.found) return `Attentions decomposed: ${a.decomposed} of ${a.found}${skipped}`;
  return `Attentions decomposed: ${a.modules.decomposed} of ${a.modules.found} `
    + `(at ${a.found} sites, PyTorch's fast path and slow path of each; ${a.decomposed} of ${a.found} sites decomposed${skipped})`;
}
