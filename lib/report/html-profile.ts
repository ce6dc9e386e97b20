// The time section of the HTML report: where the fused graph spends its time, per op kind, from
// libtorch's profile of the run (timing.opTimes, lib/pipeline/slower-ops.ts), beside the same
// kind in the unfused graph and the lowering that emitted it.
import { escapeHtml } from './format';
import type { ValidationReport } from './types';

/** Kinds listed one by one; the rest are summed in one row. */
const LISTED = 16;

const ms = (x: number) => (x < 0.1 ? x.toFixed(3) : x.toFixed(2));

export function opTimesSection(report: ValidationReport): string {
  const ops = report.timing?.opTimes;
  if (!ops?.length) return '';
  const e = escapeHtml;
  const total = ops.reduce((s, o) => s + o.fusedMs, 0);
  const listed = ops.slice(0, LISTED);
  const rest = ops.slice(LISTED);
  const share = (x: number) => (total > 0 ? `${((100 * x) / total).toFixed(1)}%` : '-');
  const rows = listed.map((o) => `<tr data-kind="${e(o.kind)}"><th scope="row"><code>${e(o.kind)}</code></th>` +
    `<td>${o.calls ?? '-'}</td><td>${ms(o.fusedMs)}</td><td>${share(o.fusedMs)}</td>` +
    `<td>${o.calls ? ms(o.fusedMs / o.calls) : '-'}</td><td>${o.unfusedMs > 0 ? ms(o.unfusedMs) : '-'}</td>` +
    `<td>${o.loweredBy.length ? e(o.loweredBy.join(', ')) : '-'}</td></tr>`);
  if (rest.length) {
    const t = rest.reduce((s, o) => s + o.fusedMs, 0);
    const u = rest.reduce((s, o) => s + o.unfusedMs, 0);
    rows.push(`<tr><th scope="row">${rest.length} other kinds</th><td></td><td>${ms(t)}</td><td>${share(t)}</td><td></td>` +
      `<td>${u > 0 ? ms(u) : '-'}</td><td></td></tr>`);
  }
  return `<section id="time-section"><h2>Time per op kind</h2>
<p class="caption">libtorch's profile of each top-level op of the fused graph (medians of 3 profiled runs after the timed ones),
beside the same kind in the unfused graph; ${e(ms(total))} ms per run in all. Profiling adds its own overhead,
so these sum to more than the median time above.</p>
<table id="op-times" class="numbers"><thead><tr><th>op</th><th>calls</th><th>fused ms / run</th><th>share</th>
<th>ms / call</th><th>unfused ms / run</th><th>lowering</th></tr></thead><tbody>
${rows.join('\n')}
</tbody></table></section>`;
}
