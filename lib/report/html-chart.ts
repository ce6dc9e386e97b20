// The memory section of the HTML report: the estimated live-bytes timeline of the unfused and
// fused graphs drawn as an SVG chart, with the measured peaks; html.ts's page script adds the hover readout.
import { escapeHtml, formatBytes } from './format';
import { heldWeights } from './lowering';
import type { MemoryPoint, ValidationReport } from './types';

const r1 = (x: number) => Math.round(x * 10) / 10;

function niceStep(range: number, ticks: number): number {
  const raw = range / Math.max(1, ticks);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * mag >= raw) return m * mag;
  return 10 * mag;
}

/** Byte ticks at round binary-ish steps (multiples of 2^k KiB/MiB). */
function byteStep(max: number, ticks: number): number {
  const raw = max / Math.max(1, ticks);
  let unit = 1;
  while (unit * 1024 <= raw) unit *= 1024;
  return niceStep(raw / unit, 1) * unit;
}

export const CHART = { width: 960, height: 340, left: 78, right: 190, top: 16, bottom: 44 };

export function memorySection(report: ValidationReport): string {
  const m = report.memory;
  if (!m || (m.unfused.length === 0 && m.fused.length === 0)) {
    return '<section id="memory-section"><h2>Memory timeline</h2><p class="muted">No memory timeline in this report.</p></section>';
  }
  const { width: W, height: H, left: L, right: R, top: T, bottom: B } = CHART;
  const series: { key: 'unfused' | 'fused'; pts: MemoryPoint[]; measured: number; estimated: number }[] = [
    { key: 'unfused', pts: m.unfused, measured: report.runs.unfused.peakBytes, estimated: report.runs.unfused.estimatedPeakBytes },
    { key: 'fused', pts: m.fused, measured: report.runs.fused.peakBytes, estimated: report.runs.fused.estimatedPeakBytes },
  ];
  const maxIndex = Math.max(1, ...series.flatMap((s) => s.pts.map((p) => p.index)));
  const maxY = Math.max(1, ...series.flatMap((s) => [...s.pts.map((p) => p.liveBytes), s.measured, s.estimated])) * 1.08;
  const x = (i: number) => L + (i / maxIndex) * (W - L - R);
  const y = (b: number) => T + (1 - b / maxY) * (H - T - B);
  const parts: string[] = [];

  const ystep = byteStep(maxY, 5);
  for (let v = 0; v <= maxY; v += ystep) {
    parts.push(`<line class="grid" x1="${L}" x2="${W - R}" y1="${r1(y(v))}" y2="${r1(y(v))}"/>` +
      `<text class="tick" x="${L - 6}" y="${r1(y(v) + 4)}" text-anchor="end">${escapeHtml(formatBytes(v))}</text>`);
  }
  const xstep = niceStep(maxIndex, 8);
  for (let i = 0; i <= maxIndex; i += xstep) {
    parts.push(`<line class="tickmark" x1="${r1(x(i))}" x2="${r1(x(i))}" y1="${H - B}" y2="${H - B + 5}"/>` +
      `<text class="tick" x="${r1(x(i))}" y="${H - B + 18}" text-anchor="middle">${i}</text>`);
  }
  parts.push(`<line class="axis" x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}"/>` +
    `<line class="axis" x1="${L}" x2="${L}" y1="${T}" y2="${H - B}"/>`);
  parts.push(`<text class="axis-label" x="${r1((L + W - R) / 2)}" y="${H - 6}" text-anchor="middle">execution order (node index)</text>`);
  parts.push(`<text class="axis-label" transform="translate(14 ${r1((T + H - B) / 2)}) rotate(-90)" text-anchor="middle">` +
    'estimated live bytes</text>');

  const labelYs: number[] = [];
  for (const s of series) {
    if (s.pts.length) {
      // A step line: the level holds until the next node runs.
      const pts: string[] = [];
      s.pts.forEach((p, k) => {
        if (k) pts.push(`${r1(x(p.index))},${r1(y(s.pts[k - 1].liveBytes))}`);
        pts.push(`${r1(x(p.index))},${r1(y(p.liveBytes))}`);
      });
      parts.push(`<polyline class="series series-${s.key}" data-series="${s.key}" points="${pts.join(' ')}"/>`);
      const peak = s.pts.reduce((a, p) => (p.liveBytes > a.liveBytes ? p : a), s.pts[0]);
      parts.push(`<circle class="est-peak est-peak-${s.key}" cx="${r1(x(peak.index))}" cy="${r1(y(peak.liveBytes))}" r="4">` +
        `<title>estimated ${s.key} peak ${escapeHtml(formatBytes(peak.liveBytes))} at node ${peak.index} ` +
        `(${escapeHtml(peak.node)})</title></circle>`);
    }
    if (s.measured >= 0) {
      let ly = y(s.measured) + 4;
      for (const other of labelYs) if (Math.abs(other - ly) < 26) ly = other + 26; // keep labels (two lines each) apart
      ly = Math.min(ly, H - 14);
      labelYs.push(ly);
      const my = r1(y(s.measured));
      parts.push(`<line class="measured measured-${s.key}" data-measured="${s.key}" x1="${L}" x2="${W - R}" y1="${my}" y2="${my}"/>`);
      // Two short lines, so that the label fits the margin right of the plot (CHART.right).
      parts.push(`<text class="measured-label measured-label-${s.key}" data-measured="${s.key}" x="${W - R + 6}" y="${r1(ly - 6)}">` +
        `<tspan x="${W - R + 6}">measured ${s.key} peak</tspan>` +
        `<tspan x="${W - R + 6}" dy="12">${escapeHtml(formatBytes(s.measured))}</tspan></text>`);
    }
  }
  parts.push(`<line id="hover-line" x1="0" x2="0" y1="${T}" y2="${H - B}" visibility="hidden"/>`);
  parts.push(`<rect id="chart-hit" x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="transparent"/>`);

  const held = report.graphs.fused.lowering ? heldWeights(report.graphs.fused.lowering) : [];
  const heldText = held.map((h) => `${h.count ? `${h.count} ` : ''}${h.what} (${formatBytes(h.bytes)})`).join('; ');
  const extra = m.fusedExtraWeightsBytes
    ? ` The fused graph holds ${escapeHtml(formatBytes(m.fusedExtraWeightsBytes))} more${heldText ? `: ${escapeHtml(heldText)}` : ''}.`
    : '';
  const weights = m.weightsBytes !== undefined
    ? ` Weights (${escapeHtml(formatBytes(m.weightsBytes))}) are counted apart and not drawn.${extra}`
    : '';
  const legend = series.map((s) => `<span><span class="key key-${s.key}"></span>${s.key}: ` +
    `estimated peak ${escapeHtml(formatBytes(s.estimated))}, measured ${escapeHtml(formatBytes(s.measured))}</span>`).join('');
  return `<section id="memory-section"><h2>Memory timeline</h2>
<p class="caption">Estimated live bytes after each node, in execution order, for the unfused (decomposed) and fused graphs;
dashed lines mark the peaks measured when the graphs ran, dots the estimated peaks.${weights}</p>
<div class="chart-frame"><svg id="memory-chart" viewBox="0 0 ${W} ${H}" data-max-index="${maxIndex}" data-max-y="${maxY}">
${parts.join('\n')}
</svg>
<div class="chart-legend">${legend}
<span><span class="key key-measured"></span>measured peak</span><span><span class="key key-dot"></span>estimated peak</span></div>
<div id="chart-readout" class="readout">&nbsp;</div></div>
${memoryTotalsTable(report)}</section>`;
}

/** What each graph holds in all while it runs: the weights, the lowerings' held copies, the activations' peak, estimated
 * and measured, and their sums. */
export function memoryTotalsTable(report: ValidationReport): string {
  const w = report.memory?.weightsBytes;
  if (w === undefined) return '';
  const held = report.memory?.fusedExtraWeightsBytes ?? 0;
  const r = report.runs;
  const b = (n: number | undefined) => escapeHtml(n === undefined || n < 0 ? '-' : formatBytes(n));
  const sum = (peak: number | undefined, extra: number) => (peak === undefined || peak < 0 ? undefined : w + extra + peak);
  const est = [r.original.estimatedPeakBytes, r.unfused.estimatedPeakBytes, r.fused.estimatedPeakBytes];
  const meas = [r.original.peakBytes, r.unfused.peakBytes, r.fused.peakBytes];
  const extras = [0, 0, held];
  const rows: [string, (number | undefined)[], string?][] = [
    ['weights', [w, w, w]],
    ['held weights (the lowerings\' copies)', extras],
    ['activations peak, estimated', est],
    ['activations peak, measured', meas],
    ['total, estimated', est.map((p, i) => sum(p, extras[i])), 'total'],
    ['total, measured', meas.map((p, i) => sum(p, extras[i])), 'total'],
  ];
  const body = rows.map(([name, v, cls]) => `<tr${cls ? ` class="${cls}"` : ''}><th scope="row">${escapeHtml(name)}</th>` +
    `${v.map((x) => `<td>${b(x)}</td>`).join('')}</tr>`).join('\n');
  return `<h3>Total memory</h3>
<table id="memory-totals" class="numbers"><thead><tr><th></th><th>original</th><th>unfused</th><th>fused</th></tr></thead><tbody>
${body}
</tbody></table>`;
}
