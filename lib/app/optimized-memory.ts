// The memory bar of an optimized model, measured as a user meets it: peak RSS (VmHWM) of a fresh
// process that loads the model, optimizes it (the original is disposed by optimize) and runs it,
// against a fresh process that loads the original and runs it. Each figure is its own process's
// high-water mark, so the optimize step itself counts. Run by `npm run bench -- --optimized-memory`.
import * as fs from 'fs';
import { runChildForJson } from './child-json';
import { Module } from '../torchscript/module';
import { randomTensor } from '../torchscript/random';
import { disposeValue, Tensor } from '../torchscript/tensor';
import { readNpy } from '../torchscript/npy';
import type { TypedArray } from '../torchscript/binding';
import type { InputSpec } from '../torchscript/propagate-shapes';
import { optimize } from '../pipeline/optimize';
import { median } from '../pipeline/compare';

export interface ProcessPeak {
  mode: 'original' | 'optimized';
  peakRssBytes: number;
  medianMs: number;
  optimizeMs?: number;
  heldBytes?: number;
}

export interface MemoryCase { name: string; model: string; inputs: InputSpec[] }

/** One case over `pairs` interleaved process pairs: the median peaks, and the median and range of the per-pair ratios. */
export interface MemoryRow { name: string; original: ProcessPeak; optimized: ProcessPeak; ratio: number; ratios: number[] }

function vmHwmBytes(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : -1;
}

/** In the child: load, [optimize,] run `runs` times; the process's peak RSS and the median run time. */
export async function measureInThisProcess(
  mode: 'original' | 'optimized', file: string, inputs: InputSpec[], runs = 4, files?: readonly string[],
): Promise<ProcessPeak> {
  const m = await Module.load(file);
  let run: (xs: ReturnType<typeof randomTensor>[]) => Promise<unknown> = (xs) => m.forward(...xs);
  let optimizeMs: number | undefined;
  let heldBytes: number | undefined;
  if (mode === 'optimized') {
    const t0 = performance.now();
    const o = await optimize(m, inputs);
    optimizeMs = performance.now() - t0;
    heldBytes = o.heldBytes;
    run = (xs) => o.forward(...xs);
  }
  const xs = inputs.map((s, i) => {
    if (!files?.[i]) return randomTensor(s.shape, s.dtype, 100 + i);
    const a = readNpy(files[i]);
    return Tensor.from(a.data as TypedArray, a.shape, a.dtype);
  });
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    disposeValue((await run(xs)) as never);
    times.push(performance.now() - t0);
  }
  return { mode, peakRssBytes: vmHwmBytes(), medianMs: median(times.slice(1)), optimizeMs, heldBytes };
}

/** measureInThisProcess in a fresh process (`files`: .npy inputs instead of seeded random ones). */
export async function measureInFreshProcess(
  mode: 'original' | 'optimized', file: string, inputs: InputSpec[], files: readonly string[] = [],
): Promise<ProcessPeak> {
  // From a checkout under mocha, tsx's hook is not in execArgv: this file is TypeScript.
  const loader = __filename.endsWith('.ts') && !process.execArgv.length ? ['--require', require.resolve('tsx/cjs')] : [];
  const args = [...loader, ...process.execArgv, __filename, mode, file, JSON.stringify(inputs), JSON.stringify(files)];
  const { code, result, stderrTail } = await runChildForJson(process.execPath, args);
  if (code === 0 && result) return result as unknown as ProcessPeak;
  throw new Error(`the ${mode} process for ${file} exited with ${code}: ${stderrTail.split('\n').slice(-5).join('\n')}`);
}

/** The process whose peak is the median of `ps`. */
function medianPeak(ps: ProcessPeak[]): ProcessPeak {
  return [...ps].sort((a, b) => a.peakRssBytes - b.peakRssBytes)[Math.floor((ps.length - 1) / 2)];
}

/**
 * Each case in `pairs` pairs of fresh processes (original, then optimized), the pairs interleaved:
 * a single pair's peaks move by 5-10% between runs on a shared machine (OpenMP and malloc timing).
 */
export async function measureOptimizedMemory(
  cases: readonly MemoryCase[], onRow?: (r: MemoryRow) => void, pairs = 3,
): Promise<MemoryRow[]> {
  const rows: MemoryRow[] = [];
  for (const c of cases) {
    const originals: ProcessPeak[] = [];
    const optimizeds: ProcessPeak[] = [];
    for (let i = 0; i < pairs; i++) {
      originals.push(await measureInFreshProcess('original', c.model, c.inputs));
      optimizeds.push(await measureInFreshProcess('optimized', c.model, c.inputs));
    }
    const ratios = originals.map((o, i) => optimizeds[i].peakRssBytes / o.peakRssBytes).sort((a, b) => a - b);
    const row = { name: c.name, original: medianPeak(originals), optimized: medianPeak(optimizeds), ratio: median(ratios), ratios };
    rows.push(row);
    onRow?.(row);
  }
  return rows;
}

const MiB = 1024 * 1024;

export function formatMemoryRow(r: MemoryRow): string {
  const peakMiB = (p: ProcessPeak) => (p.peakRssBytes / MiB).toFixed(0).padStart(5);
  const range = `${r.ratios[0].toFixed(3)}-${r.ratios[r.ratios.length - 1].toFixed(3)}`;
  return `${r.name.padEnd(28)} peak RSS original ${peakMiB(r.original)} MiB, optimized ${peakMiB(r.optimized)} MiB: `
    + `${r.ratio.toFixed(3)}x (${r.ratios.length} pairs: ${range}; bar 1.05)  `
    + `| run ${r.original.medianMs.toFixed(1)} / ${r.optimized.medianMs.toFixed(1)} ms (separate processes), `
    + `optimize ${((r.optimized.optimizeMs ?? 0) / 1000).toFixed(1)} s`;
}

if (require.main === module) {
  const [mode, file, specs, files] = process.argv.slice(2);
  measureInThisProcess(mode as 'original' | 'optimized', file, JSON.parse(specs) as InputSpec[], 4, JSON.parse(files ?? '[]') as string[])
    .then((r) => { process.stdout.write(`${JSON.stringify(r)}\n`); process.exit(0); })
    .catch((e: Error) => { process.stderr.write(`${e.stack ?? e.message}\n`); process.exit(1); });
}
