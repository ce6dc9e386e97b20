// The HTML report in a real browser: Debian's headless Chromium driven by playwright-core.
// Skips (saying why) when /usr/bin/chromium or playwright-core is missing, unless
// TORCHGRAPH_BROWSER_REQUIRED=1, where that is a failure. TORCHGRAPH_CHROMIUM overrides the
// browser path. Screenshots go to .torchgraph/screenshots/ (git-ignored) or
// $TORCHGRAPH_SCREENSHOTS.
import { strict as assert } from 'assert';
import { packedLinearOp } from '../../lib/fusion/linear-packed';
import { LINEAR_KIND } from '../../lib/core/ops/own-schemas';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { pathToFileURL } from 'url';
import { writeHtmlReport } from '../../lib/report/html';
import { formatBytes, formatDiff } from '../../lib/report/format';
import { sampleReport } from '../../lib/report/sample';
import type { ValidationReport } from '../../lib/report/types';
import { runCli } from '../support/cli';

const ROOT = path.resolve(__dirname, '..', '..');
const CHROMIUM = process.env.TORCHGRAPH_CHROMIUM ?? '/usr/bin/chromium';
const REQUIRED = process.env.TORCHGRAPH_BROWSER_REQUIRED === '1';
const SCREENSHOTS = process.env.TORCHGRAPH_SCREENSHOTS ?? path.join(ROOT, '.torchgraph', 'screenshots');

// Minimal local types for what the test uses of playwright-core (loaded lazily: it may be absent).
interface PwPage {
  goto(url: string): Promise<unknown>;
  on(ev: 'console', f: (m: { type(): string; text(): string }) => void): void;
  on(ev: 'pageerror', f: (e: Error) => void): void;
  on(ev: 'requestfailed' | 'request', f: (r: { url(): string }) => void): void;
  /** Browser-side code as a string: functions compiled by tsx carry helpers the page lacks. */
  evaluate<T>(js: string): Promise<T>;
  screenshot(o: { path: string; fullPage?: boolean }): Promise<unknown>;
  locator(sel: string): {
    first(): { boundingBox(): Promise<{ x: number; y: number; width: number; height: number } | null>; screenshot(o: { path: string }): Promise<unknown>; scrollIntoViewIfNeeded(): Promise<void> };
    click(): Promise<void>;
  };
  mouse: { move(x: number, y: number): Promise<void>; wheel(dx: number, dy: number): Promise<void> };
  close(): Promise<void>;
}
interface PwContext { newPage(): Promise<PwPage>; close(): Promise<void>; pages(): PwPage[] }
interface Pw { chromium: { launchPersistentContext(dir: string, o: Record<string, unknown>): Promise<PwContext> } }

function unavailable(): string | undefined {
  if (!fs.existsSync(CHROMIUM)) return `no Chromium at ${CHROMIUM} (apt-get install -y chromium)`;
  try {
    require.resolve('playwright-core');
  } catch {
    return 'playwright-core is not installed';
  }
  return undefined;
}

interface PageRecord { errors: string[]; requests: string[] }

async function open(ctx: PwContext, file: string): Promise<{ page: PwPage; rec: PageRecord }> {
  const page = await ctx.newPage();
  const rec: PageRecord = { errors: [], requests: [] };
  page.on('console', (m: { type(): string; text(): string }) => { if (m.type() === 'error' || m.type() === 'warning') rec.errors.push(`console.${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e: Error) => rec.errors.push(`pageerror: ${e.message}`));
  page.on('requestfailed', (r: { url(): string }) => rec.errors.push(`request failed: ${r.url()}`));
  page.on('request', (r: { url(): string }) => rec.requests.push(r.url()));
  await page.goto(pathToFileURL(file).href);
  return { page, rec };
}

/** The measured-peak labels whose box reaches outside the chart's svg (clipped), as text. */
function measuredLabelsOutside(page: PwPage): Promise<string[]> {
  return page.evaluate<string[]>(`(() => {
    const svg = document.getElementById('memory-chart').getBoundingClientRect();
    return [...document.querySelectorAll('#memory-chart text.measured-label')].filter((t) => {
      const b = t.getBoundingClientRect();
      return !(b.width > 0 && b.left >= svg.left && b.right <= svg.right && b.top >= svg.top && b.bottom <= svg.bottom);
    }).map((t) => t.textContent);
  })()`);
}

describe('report: HTML in headless Chromium (integration)', function () {
  this.timeout(120_000);
  let ctx: PwContext | undefined;
  let tmp: string;
  let userData: string;

  before(async function () {
    const why = unavailable();
    if (why) {
      if (REQUIRED) throw new Error(`TORCHGRAPH_BROWSER_REQUIRED=1 but ${why}`);
      console.log(`      skipped: ${why}`);
      this.skip();
    }
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tg-browser-'));
    userData = fs.mkdtempSync(path.join(os.tmpdir(), 'tg-chromium-'));
    fs.mkdirSync(SCREENSHOTS, { recursive: true });
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const pw = require('playwright-core') as Pw;
    ctx = await pw.chromium.launchPersistentContext(userData, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1280, height: 900 },
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync'],
    });
  });

  after(async () => {
    await ctx?.close();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    if (userData) fs.rmSync(userData, { recursive: true, force: true });
  });

  it('loads without errors or network, draws the graph and the chart, and is screenshotted', async () => {
    const report = sampleReport();
    const file = path.join(tmp, 'report.html');
    await writeHtmlReport(file, report);
    const { page, rec } = await open(ctx!, file);

    const state = await page.evaluate<{
      title: string; verdict: string; nodes: number; visibleNodes: number; edges: number; fusedNodes: number; regions: string[];
      ready: string; graphBox: { w: number; h: number }; series: { key: string; w: number; h: number; points: number }[];
      measured: string[]; attentionRows: number; summaryRows: number; lowering: string[];
    }>(`(() => {
      const box = (el) => { const r = el.getBoundingClientRect(); return { w: r.width, h: r.height }; };
      const nodes = [...document.querySelectorAll('#graph .node rect')].map(box);
      return {
        title: document.title,
        verdict: document.querySelector('.verdict').textContent,
        nodes: nodes.length,
        visibleNodes: nodes.filter((b) => b.w > 4 && b.h > 4).length,
        edges: document.querySelectorAll('#graph .edge').length,
        fusedNodes: document.querySelectorAll('#graph .node.fused').length,
        regions: [...document.querySelectorAll('#graph .region text')].map((t) => t.textContent),
        ready: document.getElementById('viewport').getAttribute('data-ready'),
        graphBox: box(document.getElementById('graph')),
        series: [...document.querySelectorAll('#memory-chart polyline.series')].map((p) => ({ key: p.getAttribute('data-series'), w: box(p).w, h: box(p).h, points: p.points.numberOfItems })),
        measured: [...document.querySelectorAll('#memory-chart line.measured')].map((l) => l.getAttribute('data-measured')),
        attentionRows: document.querySelectorAll('#attentions tbody tr').length,
        summaryRows: document.querySelectorAll('#summary tbody tr').length,
        lowering: [...document.querySelectorAll('#lowering > li')].map((li) => li.firstChild.textContent),
      };
    })()`);
    assert.deepEqual(rec.errors, []);
    assert.deepEqual(rec.requests, [pathToFileURL(file).href], 'the page fetches nothing but itself');
    assert.equal(state.title, 'torchgraph: vit_b_16 (sample data)');
    assert.equal(state.verdict, 'PASSED');
    assert.equal(state.ready, '1', 'the page script ran');
    assert.equal(state.nodes, report.drawing!.nodes.length);
    assert.equal(state.visibleNodes, state.nodes, 'every graph node has a size on screen');
    assert.equal(state.edges, report.drawing!.edges.length);
    assert.ok(state.fusedNodes >= 8, `fused nodes coloured: ${state.fusedNodes}`);
    assert.deepEqual(state.regions, ['attention: encoder.layers.encoder_layer_0.self_attention']);
    assert.ok(state.graphBox!.w > 600 && state.graphBox!.h > 300);
    assert.deepEqual(state.series.map((s) => s.key), ['unfused', 'fused']);
    for (const s of state.series) {
      assert.ok(s.w > 300 && s.h > 50, `chart line ${s.key} drawn: ${JSON.stringify(s)}`);
      assert.ok(s.points > report.memory!.unfused.length, 'a step line: two points per step');
    }
    assert.deepEqual(state.measured, ['unfused', 'fused']);
    assert.equal(state.attentionRows, 12);
    assert.equal(state.summaryRows, 9); // 9 figures, the memory total among them (the runs name the columns)
    assert.deepEqual(state.lowering, [
      'attention cores: ', 'parallel projections: ', 'linear + activation: ',
      'norm_linear: 1 group found, run as it is (libtorch has no fused op for this pattern)',
      "elementwise: 1 group found, run as it is (TorchScript's fuser (NNC) cannot generate CPU code in this libtorch (the torch wheels are built without LLVM))",
      'in place where the input dies: 24 activations and residual adds',
    ]);
    assert.deepEqual(await measuredLabelsOutside(page), [], 'the measured peaks\' labels lie inside the chart');

    const shot = path.join(SCREENSHOTS, 'report.png');
    await page.screenshot({ path: shot, fullPage: true });
    await page.locator('#graph-section').first().screenshot({ path: path.join(SCREENSHOTS, 'report-graph.png') });
    assert.ok(fs.statSync(shot).size > 20_000, 'a real screenshot');
    await page.close();
  });

  it('a real run (validate mha_demo --report): shapes in tooltips, the fused graph with SDPA, time per op, diffs, totals', async function () {
    const file = path.join(tmp, 'mha_demo.html');
    const r = runCli(['validate', 'mha_demo', '--report', file, '--json'], { timeoutMs: 600_000 });
    if (r.code !== 0 && /cannot be exported|no Python torch|addon/i.test(r.err)) {
      console.log(`      skipped: ${r.err.split('\n')[0]}`);
      this.skip();
    }
    assert.equal(r.code, 0, r.err);
    const report = JSON.parse(r.out) as ValidationReport;
    const { page, rec } = await open(ctx!, file);
    const s = await page.evaluate<{
      unfusedTitles: string[]; fusedTitles: string[]; sdpa: { text: string; title: string }[]; fusedReady: string | null;
      diffs: string[]; notes: string[]; opRow: string[]; totals: Record<string, string[]>; memoryCaption: string;
    }>(`(() => {
      const titles = (sel) => [...document.querySelectorAll(sel + ' .node title')].map((t) => t.textContent);
      const row = (tr) => [...tr.children].map((c) => c.textContent.trim());
      return {
        unfusedTitles: titles('#graph'),
        fusedTitles: titles('#fused-graph'),
        sdpa: [...document.querySelectorAll('#fused-graph .node[data-lowered="attention_core"]')]
          .map((g) => ({ text: [...g.querySelectorAll('text')].map((t) => t.textContent).join(' | '), title: g.querySelector('title').textContent })),
        fusedReady: document.querySelector('#fused-graph g.viewport').getAttribute('data-ready'),
        diffs: [...document.querySelectorAll('#attentions tbody tr')].map((tr) => tr.lastElementChild.textContent),
        notes: [...document.querySelectorAll('#lowering li.lowering-note')].map((li) => li.textContent),
        opRow: row(document.querySelector('#op-times tr[data-kind="aten::scaled_dot_product_attention"]')),
        totals: Object.fromEntries([...document.querySelectorAll('#memory-totals tbody tr')].map((tr) => [tr.firstElementChild.textContent, row(tr).slice(1)])),
        memoryCaption: document.querySelector('#memory-section .caption').textContent,
      };
    })()`);
    assert.deepEqual(rec.errors, []);
    // Tooltips give each output's shape and dtype, in both graphs.
    assert.ok(s.unfusedTitles.some((t) => /^aten::softmax\n%\S+: float32\[4, 12, 196, 196\]/.test(t)), s.unfusedTitles.join('\n---\n'));
    assert.ok(s.fusedTitles.some((t) => /^aten::layer_norm\n%\S+: float32\[4, 196, 768\]/.test(t)), s.fusedTitles.join('\n---\n'));
    // The fused graph: SDPA where the core was, its shape and profiled time on the box, the lowering in the tooltip.
    assert.equal(s.fusedReady, '1', 'the fused graph zooms and pans too');
    assert.equal(s.sdpa.length, 1, JSON.stringify(s.sdpa));
    assert.match(s.sdpa[0].text, /^scaled_dot_product_attention \| \[4, 12, 196, 64\] \u00b7 [\d.]+ ms$/);
    assert.match(s.sdpa[0].title, /fused op from the attention_core lowering\n.*attention attn\nprofiled: [\d.]+ ms per call/s);
    assert.ok(!s.fusedTitles.some((t) => t.startsWith('aten::softmax')), 'no explicit softmax left in the fused graph');
    // Per-attention diffs: numbers, from the report's data.
    const diff = report.attentions![0].maxAbsDiff!;
    assert.ok(typeof diff === 'number' && diff >= 0 && diff < 1e-4, `diff ${diff}`);
    assert.deepEqual(s.diffs, [formatDiff(diff)]);
    assert.match(s.diffs[0], /^(0|\d\.\d\de-\d+)$/);
    // The terminal's in-place line.
    assert.deepEqual(s.notes, [`in place where the input dies: ${report.graphs.fused.lowering!.inPlaceOps} activations and residual adds`]);
    // Time per op kind from the profile.
    const sdpaTime = report.timing!.opTimes!.find((o) => o.kind === 'aten::scaled_dot_product_attention')!;
    assert.equal(s.opRow[1], '1');
    assert.ok(sdpaTime.fusedMs > 0 && sdpaTime.unfusedMs === 0);
    assert.equal(s.opRow[6], 'attention_core');
    // Total memory: weights + held weights + peak, as the report's figures add up.
    const m = report.memory!;
    const total = m.weightsBytes! + m.fusedExtraWeightsBytes! + report.runs.fused.peakBytes;
    assert.equal(s.totals['total, measured'][2], formatBytes(total));
    assert.equal(s.totals['total, estimated'][2], formatBytes(m.weightsBytes! + m.fusedExtraWeightsBytes! + report.runs.fused.estimatedPeakBytes));
    // What holds the extra weights: the packed linears, as the lowering counted them.
    const held = packedLinearOp() === LINEAR_KIND ? 'linear weights packed once \\(torchgraph::linear\\)'
      : 'linear weights oneDNN reordered once \\(mkldnn::_linear_pointwise\\)';
    assert.match(s.memoryCaption, new RegExp(`holds [\\d.]+ MiB more: 2 ${held} \\([\\d.]+ MiB\\)\\.`));
    assert.deepEqual(await measuredLabelsOutside(page), []);
    await page.locator('#fused-graph-section').first().screenshot({ path: path.join(SCREENSHOTS, 'report-fused-graph.png') });
    await page.close();
  });

  it('zooms with the wheel, pans by dragging, fits back; the chart reads out on hover', async () => {
    const file = path.join(tmp, 'zoom.html');
    await writeHtmlReport(file, sampleReport());
    const { page, rec } = await open(ctx!, file);
    const viewBox = () => page.evaluate<number[]>('document.getElementById(\'graph\').getAttribute(\'viewBox\').split(\' \').map(Number)');
    await page.locator('#graph').first().scrollIntoViewIfNeeded();
    const box = (await page.locator('#graph').first().boundingBox())!;
    const before = await viewBox();
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.mouse.wheel(0, -400);
    const zoomed = await viewBox();
    assert.ok(zoomed[2] < before[2] * 0.8, `zoomed in: ${before} -> ${zoomed}`);

    await page.evaluate(`(() => {
      const svg = document.getElementById('graph');
      const r = svg.getBoundingClientRect();
      const at = (type, x) => svg.dispatchEvent(new PointerEvent(type, { clientX: x, clientY: r.top + 50, pointerId: 1, bubbles: true }));
      at('pointerdown', r.left + 300); at('pointermove', r.left + 200); at('pointerup', r.left + 200);
    })()`);
    const panned = await viewBox();
    assert.ok(panned[0] > zoomed[0], `panned right: ${zoomed} -> ${panned}`);

    await page.locator('#zoom-fit').click();
    const fit = await viewBox();
    const size = await page.evaluate<number[]>('[\'data-width\', \'data-height\'].map((a) => Number(document.getElementById(\'graph\').getAttribute(a)))');
    // Fit shows the whole graph again.
    assert.ok(fit[0] <= 0 && fit[1] <= 0 && fit[0] + fit[2] >= size[0] && fit[1] + fit[3] >= size[1], `fit: ${fit} for ${size}`);

    await page.locator('#chart-hit').first().scrollIntoViewIfNeeded();
    const chart = (await page.locator('#chart-hit').first().boundingBox())!;
    await page.mouse.move(chart.x + chart.width * 0.3, chart.y + chart.height / 2);
    const readout = await page.evaluate<string>('document.getElementById(\'chart-readout\').textContent');
    assert.match(readout ?? '', /^node \d+ \| unfused: [\d.]+ (B|KiB|MiB) after aten::\w+.* \| fused: /);
    assert.deepEqual(rec.errors, []);
    await page.close();
  });

  it('a failing report says FAILED and marks the failing check', async () => {
    const file = path.join(tmp, 'failed.html');
    await writeHtmlReport(file, sampleReport({ failing: true }));
    const { page, rec } = await open(ctx!, file);
    const s = await page.evaluate(`({
      verdict: document.querySelector('.verdict').textContent,
      failed: [...document.querySelectorAll('#checks li.fail code')].map((c) => c.textContent),
    })`);
    assert.deepEqual(s, { verdict: 'FAILED', failed: ['fused-matches'] });
    assert.deepEqual(rec.errors, []);
    await page.close();
  });
});
