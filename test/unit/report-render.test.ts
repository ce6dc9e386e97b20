// Terminal table, HTML page (structure; the browser test is in test/integration), graph drawings,
// DOT, number formats and atomic writes. No libtorch needed.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Graph } from '../../lib/core/ir';
import { BoolType, TensorType } from '../../lib/core/ir/types';
import { graphToDot } from '../../lib/report/dot';
import { drawingFromGraph } from '../../lib/report/drawing';
import { formatBytes, formatDiff, formatFlops, formatMs, textTable } from '../../lib/report/format';
import { escapeHtml, layoutDrawing, renderHtml, writeHtmlReport } from '../../lib/report/html';
import { reportToJson, validateReportJson } from '../../lib/report/json';
import { sampleDecomposedGraph, sampleReport, sampleTimeline } from '../../lib/report/sample';
import { opKind } from '../../lib/report/stats';
import { renderTerminal } from '../../lib/report/terminal';
import { heldWeights, loweringNotes } from '../../lib/report/lowering';
import { memoryReduction } from '../../lib/report/types';
import { writeFileAtomic } from '../../lib/report/write';

describe('report: formats', () => {
  it('bytes in binary units, with - for not measured', () => {
    assert.equal(formatBytes(512), '512 B');
    assert.equal(formatBytes(4.59 * 1024 * 1024), '4.59 MiB');
    assert.equal(formatBytes(346_350_312), '330.3 MiB');
    assert.equal(formatBytes(-1), '-');
    assert.equal(formatBytes(undefined), '-');
  });
  it('FLOPs, times and diffs', () => {
    assert.equal(formatFlops(602_112), '602.11 kFLOP');
    assert.equal(formatFlops(17.56e9), '17.56 GFLOP');
    assert.equal(formatMs(212.44), '212 ms');
    assert.equal(formatMs(3.14159), '3.14 ms');
    assert.equal(formatDiff(0), '0');
    assert.equal(formatDiff(1.1920929e-7), '1.19e-7');
    assert.equal(formatDiff(null), 'n/a');
  });
  it('memory reduction is (unfused - fused) / unfused, undefined when unknown', () => {
    assert.equal(memoryReduction(200, 150), 0.25);
    assert.equal(memoryReduction(-1, 150), undefined);
    assert.equal(memoryReduction(200, -1), undefined);
    assert.equal(memoryReduction(0, 0), undefined);
  });
  it('textTable aligns columns (first left, others right)', () => {
    const t = textTable(['', 'a', 'bbbb'], [['row one', '1', '22'], ['r2', '333', '4']]);
    assert.equal(t, [
      '           a  bbbb',
      '-------  ---  ----',
      'row one    1    22',
      'r2       333     4',
      '',
    ].join('\n'));
  });
});

describe('report: terminal table', () => {
  it('has the comparison rows, estimated and measured apart, and the checks', () => {
    const r = sampleReport();
    const t = renderTerminal(r);
    for (const row of ['Graph nodes', 'Attention ops', 'Fusion groups', 'FLOPs', 'Peak memory, estimated', 'Peak memory, measured', 'Median time', 'Max abs diff vs original']) {
      assert.match(t, new RegExp(`^${row} +`, 'm'), row);
    }
    assert.match(t, /^Memory reduction, fused vs original peak: -?\d+\.\d% measured \(fused vs unfused: -?\d+\.\d% estimated, -?\d+\.\d% measured\)$/m);
    assert.match(t, /^Attentions decomposed: 12 of 12$/m);
    assert.match(t, /^ {2}PASS {2}fused-matches +fused vs original: max abs diff/m);
    assert.match(t, /^Result: PASSED \(3 of 3 checks passed\)$/m);
    assert.ok(!t.includes('\u001b['), 'no colour unless asked');
    // The numeric columns line up: every table row has the same width up to its last column end.
    const lines = t.split('\n');
    // One name per column, the runs', with the caption saying what they are.
    const start = lines.findIndex((l) => /^ +original +unfused +fused$/.test(l));
    assert.ok(start > 0, t);
    assert.doesNotMatch(t, /standard +decomposed|^run as/m);
    const end = lines.findIndex((l, i) => i > start && !/^\S/.test(l));
    assert.equal(lines[end], '  (original = the model as given; unfused = attention decomposed into explicit ops; fused = fusion groups lowered to fused ops)');
    const table = lines.slice(start, end);
    assert.equal(table.length, 11, table.join('\n')); // header, rule, 9 rows
    const ends = table.map((l) => l.length);
    assert.ok(ends.every((e) => e === ends[0]), `aligned:\n${table.join('\n')}`);
  });

  it('says FAILED and names the failing check; colours only when asked', () => {
    const r = sampleReport({ failing: true });
    const t = renderTerminal(r, { color: true });
    assert.match(t, /FAIL.*fused-matches.*> 0\.0001/);
    assert.match(t, /Result: .*FAILED.* \(2 of 3 checks passed\)/);
    assert.ok(t.includes('\u001b[31m'), 'red for FAILED');
  });

  it('lists skipped attentions with their reasons, and copes with a minimal report', () => {
    const r = sampleReport();
    r.attention = { found: 12, decomposed: 11, skipped: [{ node: 'encoder.layers.encoder_layer_3.self_attention', reason: 'needs kdim' }] };
    delete r.checks;
    delete r.environment;
    delete r.inputs;
    const t = renderTerminal(r);
    assert.match(t, /^Attentions decomposed: 11 of 12 \(1 skipped\)$/m);
    assert.match(t, /^ {2}skipped encoder\.layers\.encoder_layer_3\.self_attention: needs kdim$/m);
    assert.match(t, /^Result: PASSED$/m);
  });

  it('says what the fusion groups became, each reason once with its count', () => {
    const r = sampleReport();
    const unfused = (id: string) => ({ id, lowered: false, reason: 'separate weights' });
    r.graphs.fused.lowering = {
      attentionCores: [{ id: 'a0', lowered: true }, { id: 'a1', lowered: false, reason: 'attention weights are returned' }],
      projections: [unfused('p0'), unfused('p1'), { id: 'p2', lowered: true, heldBytes: 1024 }],
      linearActs: [],
      notLowered: [{ kind: 'residual', groups: 24, reason: 'no fused libtorch op for this pattern' }],
      heldWeightBytes: 1024,
    };
    const t = renderTerminal(r);
    assert.match(t, /^ {2}attention cores: 1 of 2 -> scaled_dot_product_attention\n {4}1 not lowered: attention weights are returned$/m);
    assert.match(t, /^ {2}parallel projections: 1 of 3 -> one GEMM each\n {4}2 not lowered: separate weights$/m);
    assert.doesNotMatch(t, /linear \+ activation/);
    // Groups with no fused op are information, not a failure.
    assert.match(t, /^ {2}residual: 24 groups found, run as they are \(no fused libtorch op for this pattern\)$/m);
    assert.doesNotMatch(t, /groups unfused/);
    const html = renderHtml(r);
    assert.match(html, /<ul id="lowering"><li>attention cores: <b>1 of 2<\/b> &rarr; <code>scaled_dot_product_attention<\/code><ul><li>1 not lowered: attention weights are returned<\/li><\/ul><\/li>/);
    assert.match(html, /<li>2 not lowered: separate weights<\/li>/);
    assert.match(html, /<li>residual: 24 groups found, run as they are \(no fused libtorch op for this pattern\)<\/li>/);
    assert.match(html, /<thead><tr><th><\/th><th>original<\/th><th>unfused<\/th><th>fused<\/th><\/tr><\/thead>/);
    assert.match(html, /<p class="caption">original = the model as given; unfused = attention decomposed/);
    assert.deepEqual(validateReportJson(JSON.parse(reportToJson(r))), []);
    const bad = JSON.parse(reportToJson(r));
    bad.graphs.fused.lowering.projections[0].lowered = 'no';
    assert.match(validateReportJson(bad).join('\n'), /graphs\.fused\.lowering\.projections\[0\]\.lowered/);
  });
});

describe('report: graph drawing', () => {
  it('draws a small graph whole, without constants and weight reads', () => {
    const s = sampleDecomposedGraph(1);
    const d = drawingFromGraph(s.graph, { groupOf: (n) => s.groups.get(n) });
    assert.match(d.caption, /^all \d+ data-flow nodes/);
    assert.ok(!d.nodes.some((n) => /Constant|GetAttr/.test(n.label)));
    assert.ok(d.nodes.some((n) => n.kind === 'input' && n.label === 'x'));
    assert.ok(d.nodes.some((n) => n.kind === 'output'));
    assert.ok(!d.nodes.some((n) => n.kind === 'summary'));
    assert.ok(d.nodes.filter((n) => n.group === 'core0').length === 4, 'mul, matmul, softmax, matmul');
    assert.ok(d.nodes.filter((n) => n.attention === 'encoder.layers.encoder_layer_0.self_attention').length > 20);
    assert.deepEqual(validateReportJson({ ...sampleReport(), drawing: d }), []);
  });

  it('windows a large graph around the first attention, collapsing the rest', () => {
    const s = sampleDecomposedGraph(12);
    const d = drawingFromGraph(s.graph, { maxNodes: 60 });
    const summary = d.nodes.filter((n) => n.kind === 'summary');
    assert.equal(summary.length, 1, 'nothing before the first block; the rest after');
    assert.match(summary[0].label, /^… \d+ nodes$/);
    assert.match(summary[0].title!, /11 attention region/);
    assert.ok(d.drawnNodes! <= 60);
    assert.equal(new Set(d.nodes.map((n) => n.attention).filter(Boolean)).size, 1, 'one attention region drawn');
    assert.ok(d.edges.some((e) => e.to === 'after'));
    assert.ok(d.edges.some((e) => e.from === 'after' && e.to === 'out'));
  });

  it('lays out with dagre: every node and region placed inside the canvas', () => {
    const r = sampleReport();
    const laid = layoutDrawing(r.drawing!);
    assert.ok(laid.width > 100 && laid.height > 100);
    assert.equal(laid.regions, 1);
    assert.ok(laid.groupsDrawn >= 4);
    const rects = [...laid.svg.matchAll(/<rect x="([\d.-]+)" y="([\d.-]+)" width="([\d.]+)" height="([\d.]+)"/g)];
    assert.equal(rects.length, r.drawing!.nodes.length + laid.regions);
    for (const [, x, y, w, h] of rects) {
      assert.ok(+x >= 0 && +y >= 0 && +x + +w <= laid.width + 1 && +y + +h <= laid.height + 1, `in bounds: ${x},${y},${w},${h}`);
    }
  });

  it('labels module calls by class, other ops by kind', () => {
    const g = new Graph();
    const self = g.addInput({ kind: 'Class', name: '__torch__.M' }, 'self');
    const m = g.createNode('prim::GetAttr', [self], [{ kind: 'Class', name: '__torch__.torch.nn.modules.linear.___torch_mangle_7.Linear' }], { name: { kind: 's', value: 'fc' } }).output;
    const x = g.addInput(TensorType, 'x');
    const call = g.createNode('prim::CallMethod', [m, x], [TensorType], { name: { kind: 's', value: 'forward' } });
    const other = g.createNode('prim::CallMethod', [m, x], [TensorType], { name: { kind: 's', value: 'extra_repr' } });
    assert.equal(opKind(call), 'call_module:Linear');
    assert.equal(opKind(other), 'call_method:Linear.extra_repr');
  });
});

describe('report: DOT', () => {
  it('writes a well-formed digraph with clusters for blocks and every edge between declared nodes', () => {
    const g = new Graph();
    const x = g.addInput(TensorType, 'x');
    const c = g.addInput(BoolType, 'cond');
    const ifn = g.createNode('prim::If', [c], [TensorType]);
    const b0 = ifn.addBlock();
    const b1 = ifn.addBlock();
    g.withInsertPoint(b0, () => b0.registerOutput(g.createNode('aten::relu', [x], [TensorType]).output));
    g.withInsertPoint(b1, () => b1.registerOutput(g.createNode('aten::neg', [x], [TensorType], {}, { source: 'a "quoted" file.py:3' }).output));
    g.registerOutput(ifn.output);
    const dot = graphToDot(g, { name: 'test "graph"' });
    assert.match(dot, /^digraph "test \\"graph\\"" \{\n/);
    assert.ok(dot.trimEnd().endsWith('}'));
    assert.equal((dot.match(/\{/g) ?? []).length, (dot.match(/\}/g) ?? []).length, 'braces balance');
    assert.equal((dot.match(/subgraph "cluster_/g) ?? []).length, 2);
    const declared = new Set([...dot.matchAll(/^\s*(\w+) \[label=/gm)].map((m) => m[1]));
    const edges = [...dot.matchAll(/^\s*(\w+) -> (\w+)/gm)];
    assert.ok(edges.length >= 5);
    for (const [, a, b] of edges) assert.ok(declared.has(a) && declared.has(b), `${a} -> ${b}`);
    assert.match(dot, /\\"quoted\\"/, 'quotes escaped');
  });
});

describe('report: HTML page', () => {
  let tmp: string;
  before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tg-html-')); });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('is one self-contained document: no external resources', () => {
    const html = renderHtml(sampleReport());
    assert.match(html, /^<!DOCTYPE html>/);
    assert.doesNotMatch(html, /https?:\/\//, 'no URLs at all');
    assert.doesNotMatch(html, /<(script|img|iframe)[^>]+src=/i);
    assert.doesNotMatch(html, /<link[^>]+href=/i);
    assert.doesNotMatch(html, /@import|url\((?!#)/, 'no CSS imports or external url()');
  });

  it('counts attentions by module as the terminal does: 2 layers, each a fast-path and a slow-path site', () => {
    const r = sampleReport();
    r.attention = { found: 4, decomposed: 4, skipped: [], modules: { found: 2, decomposed: 2 } };
    const line = 'Attentions decomposed: 2 of 2 (at 4 sites, PyTorch\'s fast path and slow path of each; 4 of 4 sites decomposed)';
    assert.ok(renderTerminal(r).includes(line));
    assert.ok(renderHtml(r).includes(escapeHtml(line)), 'the same line in the HTML report');
  });

  it('has the summary, the graph, the chart, the attention table and the embedded report', () => {
    const r = sampleReport();
    const html = renderHtml(r);
    for (const id of ['summary', 'graph', 'viewport', 'memory-chart', 'attentions', 'checks', 'report-data']) assert.match(html, new RegExp(`id="${id}"`), id);
    assert.equal((html.match(/<g class="node /g) ?? []).length, r.drawing!.nodes.length);
    assert.equal((html.match(/<polyline class="series /g) ?? []).length, 2);
    assert.equal((html.match(/<line class="measured /g) ?? []).length, 2);
    assert.equal((html.match(/<tr class=""><th scope="row"><code>encoder\.layers/g) ?? []).length, 12);
    const data = html.match(/<script type="application\/json" id="report-data">([\s\S]*?)<\/script>/)![1];
    assert.deepEqual(validateReportJson(JSON.parse(data)), []);
  });

  it('escapes text from the model (names cannot inject markup)', () => {
    const r = sampleReport();
    r.model = '<script>alert(1)</script>.pt';
    r.attention = { found: 12, decomposed: 11, skipped: [{ node: 'a</script><b>', reason: 'x & y' }] };
    const html = renderHtml(r);
    assert.ok(!html.includes('<script>alert(1)'));
    assert.ok(html.includes('&lt;script&gt;alert(1)&lt;/script&gt;.pt'));
    const data = html.match(/<script type="application\/json" id="report-data">([\s\S]*?)<\/script>/)![1];
    assert.equal(JSON.parse(data).model, r.model, 'the embedded JSON round-trips');
    assert.equal(escapeHtml('a"b\'c'), 'a&quot;b&#39;c');
  });

  it('renders without the optional parts', () => {
    const r = sampleReport();
    delete r.drawing;
    delete r.memory;
    delete r.attentions;
    delete r.environment;
    const html = renderHtml(r);
    assert.match(html, /No graph drawing in this report/);
    assert.match(html, /No memory timeline in this report/);
    assert.doesNotMatch(html, /id="attentions"/);
  });

  it('the fused timeline never holds more than the unfused one', () => {
    const s = sampleDecomposedGraph(3);
    const u = sampleTimeline(s, false);
    const f = sampleTimeline(s, true);
    assert.equal(u.length, f.length);
    u.forEach((p, i) => assert.ok(f[i].liveBytes <= p.liveBytes, `step ${i}`));
    assert.equal(u.at(-1)!.liveBytes > 0, true);
  });

  it('writes atomically: whole file, no temporary left, old file kept when writing fails', async () => {
    const f = path.join(tmp, 'report.html');
    await writeHtmlReport(f, sampleReport());
    const first = fs.readFileSync(f, 'utf8');
    assert.match(first, /<\/html>\n$/);
    assert.deepEqual(fs.readdirSync(tmp), ['report.html']);
    // A failing write (the data cannot be serialised) leaves the old report as it was.
    await assert.rejects(() => writeFileAtomic(f, { toString() { throw new Error('no'); } } as unknown as string));
    assert.equal(fs.readFileSync(f, 'utf8'), first);
    assert.deepEqual(fs.readdirSync(tmp), ['report.html']);
    // Writing into a missing folder fails without creating anything.
    await assert.rejects(() => writeFileAtomic(path.join(tmp, 'nope', 'r.html'), 'x'), /does not exist/);
  });
});

describe('report: the HTML report\'s extras (fused graph, time per op, totals, held weights)', () => {
  it('the lowering list ends with the terminal\'s own lines (written out, in place), from one source', () => {
    const r = sampleReport();
    r.graphs.fused.lowering = { ...r.graphs.fused.lowering!, inPlaceOps: 37, writtenOutActivations: { 'GELU (tanh)': 2 } };
    const notes = loweringNotes(r.graphs.fused.lowering);
    assert.deepEqual(notes, ['GELU (tanh) written out as arithmetic: 2 -> one ATen op each',
      'in place where the input dies: 37 activations and residual adds']);
    const t = renderTerminal(r);
    const html = renderHtml(r);
    for (const n of notes) {
      assert.ok(t.includes(`\n  ${n}\n`), t);
      assert.ok(html.includes(`<li class="lowering-note">${escapeHtml(n)}</li>`));
    }
  });

  it('names what holds the extra weights from the outcomes\' counts; a packed copy replaces a concatenated one', () => {
    const lw = {
      attentionCores: [], linearActs: [], notLowered: [],
      projections: [{ id: 'p', lowered: true, heldBytes: 3000 }],
      packedLinears: [{ id: 'a', lowered: true, heldBytes: 4000 }, { id: 'b', lowered: true, heldBytes: 2000 }, { id: 'c', lowered: true }],
      heldWeightBytes: 6500,
    };
    assert.deepEqual(heldWeights(lw), [
      { what: 'linear weights oneDNN reordered once (mkldnn::_linear_pointwise)', count: 2, bytes: 6000 },
      { what: 'projection weights concatenated once for one GEMM', count: 1, bytes: 500 },
    ]);
    const r = sampleReport();
    r.graphs.fused.lowering = { ...r.graphs.fused.lowering!, ...lw };
    r.memory!.fusedExtraWeightsBytes = 6500;
    assert.match(renderHtml(r), /holds 6\.35 KiB more: 2 linear weights oneDNN reordered once \(mkldnn::_linear_pointwise\) \(5\.86 KiB\); 1 projection/);
  });

  it('the fused graph: lowered ops marked, shapes and profiled times on the boxes and in the tooltips; time per op kind', () => {
    const s = sampleDecomposedGraph(1);
    const matmul = s.graph.nodes().find((n) => n.kind === 'aten::matmul')!;
    const d = drawingFromGraph(s.graph, {
      loweredOf: (n) => (n === matmul ? 'attention_core' : undefined), msOf: (n) => (n === matmul ? 1.5 : undefined),
    });
    const node = d.nodes.find((n) => n.lowered === 'attention_core')!;
    assert.equal(node.shape, '[1, 12, 197, 197]');
    assert.equal(node.kindMs, 1.5);
    assert.match(node.title!, /^aten::matmul\n%\S+: float32\[1, 12, 197, 197\]/);
    const r = sampleReport();
    r.fusedDrawing = d;
    r.timing = {
      warmUp: { original: { runs: 2, settled: true }, unfused: { runs: 2, settled: true }, fused: { runs: 2, settled: true } },
      loadAverage: 0.5, cores: 2, spread: 0.05,
      opTimes: [{ kind: 'aten::matmul', fusedMs: 3, unfusedMs: 4, calls: 2, loweredBy: ['attention_core'] }],
    };
    const html = renderHtml(r);
    assert.match(html, /<svg id="fused-graph" class="graph"/);
    assert.match(html, /<g class="node node-op lowered" data-id="[^"]+" data-lowered="attention_core"><title>aten::matmul\n[^<]*fused op from the attention_core lowering[^<]*profiled: 1\.500 ms per call/);
    assert.match(html, /<text class="sub" [^>]*>\[1, 12, 197, 197\] \u00b7 1\.50 ms<\/text>/);
    assert.match(html, /<tr data-kind="aten::matmul"><th scope="row"><code>aten::matmul<\/code><\/th><td>2<\/td><td>3\.00<\/td><td>100\.0%<\/td><td>1\.50<\/td><td>4\.00<\/td><td>attention_core<\/td><\/tr>/);
    assert.deepEqual(validateReportJson(JSON.parse(reportToJson(r))), []);
  });

  it('total memory: weights, held copies and each peak, estimated and measured, summed', () => {
    const r = sampleReport();
    r.memory!.fusedExtraWeightsBytes = 1 << 20;
    const html = renderHtml(r);
    const w = r.memory!.weightsBytes!;
    const fused = formatBytes(w + (1 << 20) + r.runs.fused.peakBytes);
    const est = formatBytes(w + (1 << 20) + r.runs.fused.estimatedPeakBytes);
    assert.match(html, new RegExp(`<tr class="total"><th scope="row">total, measured</th><td>[^<]+</td><td>[^<]+</td><td>${fused}</td></tr>`));
    assert.match(html, new RegExp(`<tr class="total"><th scope="row">total, estimated</th><td>-</td><td>[^<]+</td><td>${est}</td></tr>`));
  });
});
