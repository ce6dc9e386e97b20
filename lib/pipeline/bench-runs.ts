// `torchgraph bench`'s table: per case, one row per run timed in the same repetitions (the
// original, unfused and fused graphs, the optimized model, PyTorch's anchors, ablations), each as
// a ratio against the original in the same run. The project's suite table with its targets is
// formatBenchTable (lib/pipeline/bench.ts).
import type { BenchCaseResult, BenchReport } from './bench';
import { describeSlowerOps } from './slower-ops';

const MiB = (b: number) => (b / 2 ** 20).toFixed(2);
const diffCell = (d: number | null | undefined) => (d === undefined || d === null ? 'n/a' : d.toExponential(1));

function caseRows(c: BenchCaseResult): string[][] {
  const { runs, external = {} } = c.comparison;
  const base = runs.original.medianMs;
  const timing = (t: { medianMs: number; minMs: number; maxMs: number }) =>
    [`${t.medianMs.toFixed(2)} [${t.minMs.toFixed(2)}-${t.maxMs.toFixed(2)}]`, (t.medianMs / base).toFixed(3)];
  const rows = (['original', 'unfused', 'fused'] as const).map((n) =>
    [n, ...timing(runs[n]), MiB(runs[n].peakBytes), n === 'original' ? '-' : diffCell(runs[n].maxAbsDiff)]);
  const anchorDiffs = c.anchors?.maxAbsDiffs ?? {};
  // The optimized model next to the fused graph, then PyTorch's anchors and any ablations.
  const names = Object.keys(external).sort((a, b) => Number(b === 'optimized') - Number(a === 'optimized'));
  for (const name of names) {
    const t = external[name];
    const diff = name === 'optimized' ? c.optimizedMaxAbsDiff : anchorDiffs[name];
    rows.push([name, ...timing(t), 'n/a', diffCell(diff)]);
  }
  for (const mode of Object.keys(c.anchors?.skipped ?? {})) rows.push([mode, 'skipped', 'n/a', 'n/a', 'n/a']);
  return rows;
}

function table(rows: string[][]): string[] {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((x, i) => (i === 0 ? x.padEnd(widths[i]) : x.padStart(widths[i]))).join('  ');
  return [line(rows[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)];
}

function caseNotes(c: BenchCaseResult, gemmGflops: number | undefined): string[] {
  const notes: string[] = [];
  const fusedMs = c.comparison.runs.fused.medianMs;
  const rate = c.flops / (fusedMs / 1000) / 1e9;
  const peak = gemmGflops ? ` (${((100 * rate) / gemmGflops).toFixed(0)}% of this machine's GEMM peak)` : '';
  notes.push(`attention cores lowered to SDPA: ${c.loweredCores}/${c.cores}; fused graph at ${rate.toFixed(0)} GFLOP/s${peak}`);
  for (const [mode, route] of Object.entries(c.anchors?.routes ?? {})) {
    const why = c.anchors?.skipped?.[mode];
    notes.push(`${mode}: ${route}${why ? ` (skipped: ${why})` : ''}`);
  }
  if (c.comparison.slowerOps) {
    notes.push('every fused run was slower than every original run; profiled, the time grew most in: '
      + describeSlowerOps(c.comparison.slowerOps));
  }
  if (c.comparison.load.warning) notes.push(c.comparison.load.warning);
  return notes;
}

/** Per case: its runs as rows (ms, ratio against the original, measured peak, max abs diff against the original's output). */
export function formatRunsTable(report: BenchReport): string {
  const out: string[] = [];
  for (const c of report.cases) {
    const inputs = c.inputs.map((i) => `${i.dtype}[${i.shape.join(', ')}]`).join(', ');
    const n = c.comparison.runs.original.samples.length;
    out.push(`${c.name} on ${inputs}: medians of ${n} interleaved runs, ratios against the original in the same run`);
    out.push(...table([['run', 'ms [min-max]', 'x original', 'peak MiB', 'max abs diff'], ...caseRows(c)]));
    out.push(...caseNotes(c, report.gemmGflops).map((l) => `  ${l}`), '');
  }
  const env = report.environment;
  const cpu = env.cpuModel ? ` (${env.cpuModel})` : '';
  out.push(`device ${env.device}, torch ${env.torchVersion}, ${env.threads} threads, ${env.cpus} CPUs${cpu}, node ${env.node}`);
  if (report.gemmGflops) out.push(`machine peak: float32 GEMM 2048x2048 at ${report.gemmGflops.toFixed(0)} GFLOP/s (same run)`);
  return out.join('\n');
}
