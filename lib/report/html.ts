// The HTML report: one self-contained file (inline CSS, SVG and script; nothing is fetched when
// it is viewed). This file holds the page: its shell, the tables, the stylesheet and the script that
// zooms and pans the graph (drawn by html-graph.ts) and reads out the memory chart (html-chart.ts).
// The report object itself is embedded as JSON (<script type="application/json" id="report-data">) for tools.
import * as fs from 'fs';
import { escapeHtml, formatDiff, formatMs, formatPercent } from './format';
import { CHART, memorySection } from './html-chart';
import { graphSection, layoutDrawing, type GraphSectionOptions } from './html-graph';
import { opTimesSection } from './html-profile';
import { reportToJsonObject } from './json';
import { describeLowering, loweringNotes, notLoweredText, RUN_CAPTION, RUN_COLUMNS } from './lowering';
import { memoryReduction, type LoweringReport, type ValidationReport } from './types';
import { writeFileAtomic } from './write';
import { attentionLine, summaryRows } from './summary';

// Where callers import them from today.
export { CHART, escapeHtml, layoutDrawing };

export interface HtmlOptions {
  /** Page title; default "torchgraph: <model>". */
  title?: string;
}

/** JSON that is safe inside a <script> element. */
function scriptJson(v: unknown): string {
  return JSON.stringify(v).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

const FUSED_GRAPH: GraphSectionOptions = {
  id: 'fused-graph', prefix: 'fused-', heading: 'Fused graph',
  note: 'Outlined in red: the fused ops the lowerings emitted (SDPA where the attention core was); each box shows its output\'s shape '
    + 'and, from the profile, the mean time of one call of its op kind.',
};

// ---- tables ------------------------------------------------------------------------------------

function row(cells: string[], head = false): string {
  if (head) return `<tr>${cells.map((c) => `<th>${c}</th>`).join('')}</tr>`;
  return `<tr>${cells.map((c, i) => (i === 0 ? `<th scope="row">${c}</th>` : `<td>${c}</td>`)).join('')}</tr>`;
}

function summarySection(report: ValidationReport): string {
  const { graphs: g, runs: r } = report;
  const e = escapeHtml;
  const rows = summaryRows(report).map((cells) => row(cells.map(e)));
  const vsOriginal = memoryReduction(r.original.peakBytes, r.fused.peakBytes);
  const est = memoryReduction(r.unfused.estimatedPeakBytes, r.fused.estimatedPeakBytes);
  const meas = memoryReduction(r.unfused.peakBytes, r.fused.peakBytes);
  const t = report.timing;
  const timing = t ? timingParagraph(t) : '';
  const a = report.attention;
  const checks = (report.checks ?? []).map((c) =>
    `<li class="${c.passed ? 'pass' : 'fail'}"><span class="mark">${c.passed ? 'PASS' : 'FAIL'}</span> ` +
    `<code>${e(c.name)}</code> ${e(c.detail)}</li>`).join('\n');
  const skipped = a.skipped.map((s) => `<li><code>${e(s.node)}</code>: ${e(s.reason)}</li>`).join('\n');
  const reduction = `<p>Memory reduction, fused vs original peak: <b>${e(formatPercent(vsOriginal))}</b> measured ` +
    `(fused vs unfused: ${e(formatPercent(est))} estimated, ${e(formatPercent(meas))} measured).`;
  return `<section id="summary-section"><h2>Summary</h2>
<table id="summary" class="numbers"><thead>${row(['', ...RUN_COLUMNS].map(e), true)}</thead><tbody>
${rows.join('\n')}
</tbody></table>
<p class="caption">${e(RUN_CAPTION)}</p>
${timing}${reduction}
${e(attentionLine(a, report.graphs.fused.lowering?.attentionCores.length))}.</p>
${skipped ? `<ul class="skipped">${skipped}</ul>` : ''}
${g.fused.lowering ? loweringList(g.fused.lowering) : ''}
${checks ? `<h3>Checks</h3><ul id="checks" class="checks">${checks}</ul>` : ''}
</section>`;
}

/** The times' paragraph: the warm-up runs of each graph, and the warnings. */
function timingParagraph(t: NonNullable<ValidationReport['timing']>): string {
  const e = escapeHtml;
  const warmUps = (['original', 'unfused', 'fused'] as const)
    .map((n) => `${t.warmUp[n].runs}${t.warmUp[n].settled ? '' : ' (not settled)'}`).join(' / ');
  return `<p>Times: medians of the timed runs, interleaved, after ${warmUps} warm-up runs.` +
    `${t.warning ? ` <b>Warning: ${e(t.warning)}</b>.` : ''}${t.fusedSlower ? ` <b>Warning: ${e(t.fusedSlower)}</b>.` : ''}</p>\n`;
}

function loweringList(lw: LoweringReport): string {
  const e = escapeHtml;
  const items = describeLowering(lw).map((l) => {
    const head = l.lowered === null
      ? e(notLoweredText(l.kind, l.total, l.unfused[0].reason))
      : `${e(l.kind)}: <b>${l.lowered} of ${l.total}</b> &rarr; <code>${e(l.to!)}</code>`;
    const why = l.lowered === null ? '' : l.unfused.map((u) => `<li>${u.count} not lowered: ${e(u.reason)}</li>`).join('');
    return `<li>${head}${why ? `<ul>${why}</ul>` : ''}</li>`;
  });
  for (const note of loweringNotes(lw)) items.push(`<li class="lowering-note">${e(note)}</li>`);
  return `<h3>Fused lowering</h3><ul id="lowering">${items.join('\n')}</ul>`;
}

const ATTENTION_HEAD = '<thead><tr><th>where</th><th>form</th><th>heads</th><th>embed dim</th><th>batch first</th>' +
  '<th>ops exposed</th><th>decomposed</th><th>core max abs diff</th></tr></thead>';

const ATTENTION_CAPTION = 'core max abs diff: the attention core\'s output in the fused graph (SDPA where it was lowered) against the '
  + 'explicit core in the unfused graph, on the same inputs; differences from earlier layers reach later cores too. '
  + '"-": the core is not in both graphs at the top level (inside a branch, or not decomposed).';

function attentionSection(report: ValidationReport): string {
  const list = report.attentions ?? [];
  if (!list.length) return '';
  const e = escapeHtml;
  const yn = (b: boolean | undefined) => (b === undefined ? '-' : b ? 'yes' : 'no');
  const rows = list.map((a) => `<tr class="${a.decomposed ? '' : 'not-decomposed'}">` +
    `<th scope="row"><code>${e(a.id)}</code></th><td>${e(a.form)}</td>` +
    `<td>${a.heads ?? '-'}</td><td>${a.embedDim ?? '-'}</td><td>${yn(a.batchFirst)}</td><td>${a.opsExposed}</td>` +
    `<td>${a.decomposed ? 'yes' : e(`no: ${a.reason ?? 'no reason given'}`)}</td><td>${e(formatDiff(a.maxAbsDiff))}</td></tr>`);
  return `<section id="attention-section"><h2>Attention</h2>
<table id="attentions" class="numbers">${ATTENTION_HEAD}<tbody>
${rows.join('\n')}
</tbody></table>
<p class="caption">${e(ATTENTION_CAPTION)}</p></section>`;
}

function environmentSection(report: ValidationReport): string {
  const e = escapeHtml;
  const env = report.environment ?? {};
  const items: [string, string][] = [];
  if (report.inputs?.length) {
    for (const i of report.inputs) items.push([`input ${i.name}`, `${i.shape.join('x') || 'scalar'} ${i.dtype} (${i.source})`]);
  }
  if (report.tolerance !== undefined) items.push(['tolerance', `max abs diff <= ${report.tolerance}`]);
  if (env.device) items.push(['device', env.device]);
  if (env.torchVersion) items.push(['torch', env.torchVersion]);
  if (env.torchgraphVersion) items.push(['torchgraph', env.torchgraphVersion]);
  if (env.node) items.push(['node', env.node]);
  if (env.platform) items.push(['platform', env.platform]);
  if (env.createdAt) items.push(['created', env.createdAt]);
  if (env.timings) items.push(['stage times', Object.entries(env.timings).map(([k, v]) => `${k} ${formatMs(v)}`).join(', ')]);
  if (!items.length) return '';
  const list = items.map(([k, v]) => `<dt>${e(k)}</dt><dd>${e(v)}</dd>`).join('');
  return `<section id="environment-section"><h2>Run</h2><dl>${list}</dl></section>`;
}

// ---- page --------------------------------------------------------------------------------------

const CSS = `
:root { --fg:#1d232b; --muted:#5b6573; --line:#d8dde3; --bg:#fff; --panel:#f6f8fa; --pass:#1a7f37; --fail:#cf222e;
  --unfused:#2f6fb3; --fused:#e0701b; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: var(--fg);
  background: var(--bg); }
header { padding: 18px 28px 10px; border-bottom: 1px solid var(--line); display: flex; align-items: baseline; gap: 16px; flex-wrap: wrap; }
header h1 { font-size: 20px; margin: 0; }
.verdict { font-weight: 700; padding: 2px 10px; border-radius: 12px; color: #fff; }
.verdict.pass { background: var(--pass); } .verdict.fail { background: var(--fail); }
main { padding: 6px 28px 40px; max-width: 1280px; }
h2 { font-size: 17px; margin: 22px 0 8px; } h3 { font-size: 15px; margin: 14px 0 6px; }
.muted, .caption { color: var(--muted); }
table.numbers { border-collapse: collapse; }
table.numbers th, table.numbers td { padding: 4px 12px; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; }
table.numbers th[scope=row] { text-align: left; font-weight: 500; }
table.numbers thead th { background: var(--panel); }
table.numbers thead th:first-child { text-align: left; }
#summary tbody tr:first-child td, #summary tbody tr:first-child th { color: var(--muted); font-style: italic; }
ul.checks { list-style: none; padding: 0; margin: 0; }
ul.checks li { padding: 2px 0; }
.mark { display: inline-block; width: 44px; font-weight: 700; }
li.pass .mark { color: var(--pass); } li.fail .mark { color: var(--fail); }
tr.not-decomposed td { color: var(--fail); }
.toolbar { display: flex; gap: 6px; align-items: center; margin: 6px 0; flex-wrap: wrap; }
.toolbar button { min-width: 32px; height: 26px; border: 1px solid var(--line); background: var(--panel); border-radius: 5px;
  cursor: pointer; }
.legend { color: var(--muted); margin-left: 12px; font-size: 12px; }
.swatch { display: inline-block; width: 14px; height: 10px; border-radius: 3px; margin: 0 4px 0 10px; vertical-align: middle;
  border: 1px solid #7a8591; }
.fused-swatch { background: linear-gradient(90deg, #8ecae6 50%, #ffb703 50%); } .plain-swatch { background: #fff; }
.lowered-swatch { background: #fff; border: 2.5px solid #b3261e; }
.region-swatch { background: rgba(120, 90, 200, .12); border: 1px dashed #7c5cc4; }
.summary-swatch { background: #eceff3; border-style: dashed; }
.graph-frame { border: 1px solid var(--line); border-radius: 6px; height: 72vh; min-height: 240px; overflow: hidden; background: #fcfdfe; }
svg.graph { width: 100%; height: 100%; cursor: grab; touch-action: none; user-select: none; }
svg.graph.dragging { cursor: grabbing; }
svg.graph .node rect { fill: #fff; stroke: #6b7785; stroke-width: 1; }
svg.graph .node text { font: 12px ui-monospace, "DejaVu Sans Mono", monospace; text-anchor: middle; fill: #1d232b; }
svg.graph .node text.sub { font-size: 10px; fill: #4a5561; }
svg.graph .node.lowered rect { stroke: #b3261e; stroke-width: 2.5; }
svg.graph .node-input rect, svg.graph .node-output rect { fill: #e8f1fb; stroke: #2f6fb3; }
svg.graph .node-summary rect { fill: #eceff3; stroke-dasharray: 4 3; }
svg.graph .node:hover rect { stroke: #000; stroke-width: 2; }
svg.graph .edge { fill: none; stroke: #8a96a3; stroke-width: 1.2; }
svg.graph marker path { fill: #8a96a3; }
svg.graph .region rect { fill: rgba(120, 90, 200, .07); stroke: #7c5cc4; stroke-dasharray: 5 4; }
svg.graph .region text { font: 600 12px system-ui, sans-serif; fill: #5a3fa6; paint-order: stroke; stroke: #fcfdfe; stroke-width: 3px; }
.chart-frame { position: relative; max-width: 980px; }
#memory-chart { width: 100%; height: auto; }
#memory-chart .grid { stroke: #eef1f4; } #memory-chart .axis, #memory-chart .tickmark { stroke: #8a96a3; }
#memory-chart .tick { font-size: 11px; fill: var(--muted); } #memory-chart .axis-label { font-size: 12px; fill: var(--muted); }
#memory-chart .series { fill: none; stroke-width: 1.6; }
#memory-chart .series-unfused { stroke: var(--unfused); } #memory-chart .series-fused { stroke: var(--fused); }
.chart-legend { display: flex; gap: 18px; flex-wrap: wrap; font-size: 12px; color: var(--muted); margin: 2px 0 4px 78px; }
.key { display: inline-block; width: 18px; height: 0; border-top: 3px solid; vertical-align: middle; margin-right: 6px; }
.key-unfused { border-color: var(--unfused); } .key-fused { border-color: var(--fused); }
.key-measured { border-top: 2px dashed #555; } .key-dot { width: 8px; height: 8px; border: 0; border-radius: 50%; background: #555; }
#memory-chart .est-peak-unfused { fill: var(--unfused); } #memory-chart .est-peak-fused { fill: var(--fused); }
#memory-chart .measured { stroke-dasharray: 6 4; stroke-width: 1.3; }
#memory-chart .measured-unfused { stroke: var(--unfused); } #memory-chart .measured-fused { stroke: var(--fused); }
#memory-chart .measured-label { font-size: 11px; }
.measured-label-unfused { fill: var(--unfused); } .measured-label-fused { fill: var(--fused); }
#hover-line { stroke: #444; stroke-width: 1; stroke-dasharray: 2 2; }
.readout { font: 12px ui-monospace, "DejaVu Sans Mono", monospace; color: var(--muted); min-height: 1.5em; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; } dt { color: var(--muted); } dd { margin: 0; }
#memory-totals tr.total th, #memory-totals tr.total td { font-weight: 600; }
code { font: 12.5px ui-monospace, "DejaVu Sans Mono", monospace; }
`;

// Runs in the browser: zoom/pan for the graph, a hover readout for the chart. Plain ES2017.
const CLIENT_JS = `
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('report-data').textContent);
  var panZoom = function (svg) {
    var section = svg.closest('section');
    var vp = svg.querySelector('g.viewport');
    var W = +svg.getAttribute('data-width'), H = +svg.getAttribute('data-height');
    var view = { x: 0, y: 0, w: W, h: H };
    var apply = function () { svg.setAttribute('viewBox', view.x + ' ' + view.y + ' ' + view.w + ' ' + view.h); };
    var toSvg = function (cx, cy) {
      var r = svg.getBoundingClientRect();
      // preserveAspectRatio meet: one scale, content centred horizontally, top-aligned.
      var s = Math.min(r.width / view.w, r.height / view.h);
      var ox = (r.width - view.w * s) / 2;
      return { x: view.x + (cx - r.left - ox) / s, y: view.y + (cy - r.top) / s, s: s };
    };
    var zoom = function (factor, cx, cy) {
      var r = svg.getBoundingClientRect();
      if (cx === undefined) { cx = r.left + r.width / 2; cy = r.top + r.height / 2; }
      var p = toSvg(cx, cy);
      var nw = Math.min(Math.max(view.w / factor, W / 50), W * 4);
      var k = nw / view.w;
      view.x = p.x - (p.x - view.x) * k; view.y = p.y - (p.y - view.y) * k;
      view.w = nw; view.h = view.h * k;
      apply();
    };
    var fit = function () {
      // The whole graph, but a small one no larger than 1.25x.
      var r = svg.getBoundingClientRect();
      var s = Math.min(r.width / W, r.height / H);
      if (s > 1.25) {
        var w = r.width / 1.25, h = r.height / 1.25;
        view = { x: (W - w) / 2, y: 0, w: w, h: h };
      } else {
        view = { x: 0, y: 0, w: W, h: H };
      }
      apply();
    };
    var initial = function () {
      // The whole graph when it stays readable; otherwise, at a readable width, the top of the
      // first attention region (what the report is about), or the top of the graph.
      var r = svg.getBoundingClientRect();
      if (Math.min(r.width / W, r.height / H) >= 0.45) { fit(); return; }
      var w = Math.min(W, r.width / 0.7);
      var region = svg.querySelector('g.region rect');
      var top = region ? Math.max(0, parseFloat(region.getAttribute('y')) - 30) : 0;
      view = { x: (W - w) / 2, y: top, w: w, h: w * r.height / Math.max(1, r.width) };
      apply();
    };
    svg.addEventListener('wheel', function (ev) {
      ev.preventDefault();
      zoom(Math.exp(-ev.deltaY * 0.0015), ev.clientX, ev.clientY);
    }, { passive: false });
    var drag = null;
    svg.addEventListener('pointerdown', function (ev) {
      drag = { x: ev.clientX, y: ev.clientY, vx: view.x, vy: view.y };
      svg.setPointerCapture(ev.pointerId); svg.classList.add('dragging');
    });
    svg.addEventListener('pointermove', function (ev) {
      if (!drag) return;
      var s = toSvg(0, 0).s;
      view.x = drag.vx - (ev.clientX - drag.x) / s; view.y = drag.vy - (ev.clientY - drag.y) / s;
      apply();
    });
    var end = function () { drag = null; svg.classList.remove('dragging'); };
    svg.addEventListener('pointerup', end); svg.addEventListener('pointercancel', end);
    section.querySelector('[data-zoom=in]').addEventListener('click', function () { zoom(1.25); });
    section.querySelector('[data-zoom=out]').addEventListener('click', function () { zoom(0.8); });
    section.querySelector('[data-zoom=fit]').addEventListener('click', fit);
    vp.setAttribute('data-ready', '1');
    initial();
  };
  Array.prototype.forEach.call(document.querySelectorAll('svg.graph'), panZoom);
  var chart = document.getElementById('memory-chart');
  if (chart && data.memory) {
    var hit = document.getElementById('chart-hit'), line = document.getElementById('hover-line');
    var out = document.getElementById('chart-readout');
    var maxIndex = +chart.getAttribute('data-max-index');
    var x0 = +hit.getAttribute('x'), xw = +hit.getAttribute('width');
    var fmt = function (b) {
      var u = ['B', 'KiB', 'MiB', 'GiB'], i = 0;
      while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
      return (i ? b.toFixed(2) : b) + ' ' + u[i];
    };
    var at = function (pts, idx) {
      var best = null;
      for (var k = 0; k < pts.length; k++) { if (pts[k].index <= idx) best = pts[k]; else break; }
      return best;
    };
    hit.addEventListener('mousemove', function (ev) {
      var r = chart.getBoundingClientRect();
      var sx = (ev.clientX - r.left) * (chart.viewBox.baseVal.width / r.width);
      var idx = Math.round((sx - x0) / xw * maxIndex);
      idx = Math.max(0, Math.min(maxIndex, idx));
      var xx = x0 + idx / maxIndex * xw;
      line.setAttribute('x1', xx); line.setAttribute('x2', xx); line.setAttribute('visibility', 'visible');
      var u = at(data.memory.unfused, idx), f = at(data.memory.fused, idx);
      out.textContent = 'node ' + idx + ' | unfused: ' + (u ? fmt(u.liveBytes) + ' after ' + u.node : '-') +
        ' | fused: ' + (f ? fmt(f.liveBytes) + ' after ' + f.node : '-');
    });
    hit.addEventListener('mouseleave', function () { line.setAttribute('visibility', 'hidden'); });
  }
})();
`;

/** The head line every report page carries: how a file is known as one of ours. */
const GENERATOR = '<meta name="generator" content="torchgraph">';

/** Whether `file` is a report page this module wrote (its first 4 KiB carry the generator line). */
export function isHtmlReport(file: string): boolean {
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, 'r');
    const head = Buffer.alloc(4096);
    const n = fs.readSync(fd, head, 0, head.length, 0);
    return head.subarray(0, n).toString('utf8').includes(GENERATOR);
  } catch {
    return false;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** The whole report page as one HTML string. */
export function renderHtml(report: ValidationReport, opts: HtmlOptions = {}): string {
  const title = opts.title ?? `torchgraph: ${report.model}`;
  const json = reportToJsonObject(report);
  const verdict = report.passed ? '<span class="verdict pass">PASSED</span>' : '<span class="verdict fail">FAILED</span>';
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
${GENERATOR}
<title>${escapeHtml(title)}</title>
<style>${CSS}</style>
</head><body>
<header><h1>torchgraph validation: <code>${escapeHtml(report.model)}</code></h1>${verdict}</header>
<main>
${summarySection(report)}
${graphSection(report.drawing)}
${report.fusedDrawing ? graphSection(report.fusedDrawing, FUSED_GRAPH) : ''}
${opTimesSection(report)}
${memorySection(report)}
${attentionSection(report)}
${environmentSection(report)}
</main>
<script type="application/json" id="report-data">${scriptJson(json)}</script>
<script>${CLIENT_JS}</script>
</body></html>
`;
}

/** Render and write atomically (a temporary file in the same folder, then a rename). */
export async function writeHtmlReport(file: string, report: ValidationReport, opts: HtmlOptions = {}): Promise<void> {
  await writeFileAtomic(file, renderHtml(report, opts));
}
