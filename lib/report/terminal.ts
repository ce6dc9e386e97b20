// The terminal rendering of a ValidationReport: the original / unfused / fused table,
// honest about what is estimated and what is measured, followed by the checks.
import { formatBytes, formatPercent, textTable } from './format';
import { attentionLine, summaryRows } from './summary';
import { describeLowering, loweringNotes, notLoweredText, RUN_CAPTION, RUN_COLUMNS } from './lowering';
import { memoryReduction, memoryTotals, type LoweringReport, type ValidationReport } from './types';

export interface TerminalOptions {
  /** ANSI colours for PASS/FAIL (default false; the CLI turns it on for a TTY without NO_COLOR). */
  color?: boolean;
}

const paint = (on: boolean, code: number, s: string) => (on ? `\x1b[${code}m${s}\x1b[0m` : s);

export function renderTerminal(report: ValidationReport, opts: TerminalOptions = {}): string {
  const color = opts.color ?? false;
  const r = report.runs;
  const out: string[] = [];

  out.push(`torchgraph validate: ${report.model}`);
  const env = report.environment;
  const about: string[] = [];
  if (report.inputs?.length) {
    const inputs = report.inputs.map((i) => `${i.name} ${i.shape.join('x') || 'scalar'} ${i.dtype}`).join(', ');
    about.push(`input${report.inputs.length > 1 ? 's' : ''} ${inputs}`);
  }
  if (env?.device) about.push(`device ${env.device}`);
  if (env?.torchVersion) about.push(`torch ${env.torchVersion}`);
  if (about.length) out.push(`  ${about.join(' | ')}`);
  out.push('');

  const rows = summaryRows(report);
  out.push(textTable(['', ...RUN_COLUMNS], rows).trimEnd());
  out.push(`  (${RUN_CAPTION})`);
  out.push('');

  const t = report.timing;
  if (t) {
    const names = ['original', 'unfused', 'fused'] as const;
    const unsettled = names.filter((n) => !t.warmUp[n].settled);
    out.push(`Times: medians of the timed runs, interleaved, after ${names.map((n) => t.warmUp[n].runs).join(' / ')} warm-up runs` +
      (unsettled.length
        ? `; ${unsettled.join(' and ')} had not settled (three successive runs still differed by over 20%)`
        : ' (each settled)'));
    if (t.warning) out.push(`Warning: ${t.warning}`);
    if (t.fusedSlower) out.push(`Warning: ${t.fusedSlower}${t.warning ? ' (on a busy machine)' : ''}`);
  }
  // The headline compares with the model as given; the decomposed graph is the detail.
  const vsOriginal = memoryReduction(r.original.peakBytes, r.fused.peakBytes);
  const est = memoryReduction(r.unfused.estimatedPeakBytes, r.fused.estimatedPeakBytes);
  const meas = memoryReduction(r.unfused.peakBytes, r.fused.peakBytes);
  out.push(`Memory reduction, fused vs original peak: ${formatPercent(vsOriginal)} measured `
    + `(fused vs unfused: ${formatPercent(est)} estimated, ${formatPercent(meas)} measured)`);
  if (report.memory?.weightsBytes !== undefined) out.push(`Weights (not in the peaks above): ${formatBytes(report.memory.weightsBytes)}`);
  if (report.memory?.fusedExtraWeightsBytes) {
    out.push('Fused graph\'s extra weights (concatenated, folded and prepacked weights; not in the peaks): '
      + formatBytes(report.memory.fusedExtraWeightsBytes));
  }

  const lw = report.graphs.fused.lowering;
  if (lw) out.push(...loweringLines(lw));

  const a = report.attention;
  out.push(attentionLine(a, report.graphs.fused.lowering?.attentionCores.length));
  for (const s of a.skipped) out.push(`  skipped ${s.node}: ${s.reason}`);

  if (report.checks?.length) {
    out.push('Checks:');
    const w = Math.max(...report.checks.map((c) => c.name.length));
    for (const c of report.checks) {
      const mark = c.passed ? paint(color, 32, 'PASS') : paint(color, 31, 'FAIL');
      out.push(`  ${mark}  ${c.name.padEnd(w)}  ${c.detail}`);
    }
  }
  const failed = report.checks?.filter((c) => !c.passed).length ?? 0;
  const total = report.checks?.length;
  const verdict = report.passed ? paint(color, 32, 'PASSED') : paint(color, 31, 'FAILED');
  out.push(`Result: ${verdict}${total !== undefined ? ` (${total - failed} of ${total} checks passed)` : ''}`);
  return out.join('\n') + '\n';
}

/** The memory-total row, when the weights' size is known. */
export function totalRow(report: ValidationReport): string[][] {
  const t = memoryTotals(report);
  return t ? [['Weights + held weights + peak', formatBytes(t.original), formatBytes(t.unfused), formatBytes(t.fused)]] : [];
}

/** What the fused graph's groups became (see lowering.ts). */
function loweringLines(lw: LoweringReport): string[] {
  const out = ['Fused lowering:'];
  for (const l of describeLowering(lw)) {
    if (l.lowered === null) {
      out.push(`  ${notLoweredText(l.kind, l.total, l.unfused[0].reason)}`);
      continue;
    }
    out.push(`  ${l.kind}: ${l.lowered} of ${l.total} -> ${l.to}`);
    for (const u of l.unfused) out.push(`    ${u.count} not lowered: ${u.reason}`);
  }
  for (const note of loweringNotes(lw)) out.push(`  ${note}`);
  return out;
}
