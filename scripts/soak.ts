// Soak: N load/forward/dispose cycles on mha_demo, with dispose() and without it (left to the
// GC), each in its own process, sampling RSS and the live bytes of native tensor storage.
// No environment variable is set. `npm run soak -- [--cycles 1000] [--json]`
// Bar (issue 14): RSS growth over the cycles <= 50 MB in both modes.
import { spawnSync } from 'child_process';
import { ensureModel } from '../lib/app/models';
import { binding } from '../lib/torchscript/binding';
import { Module } from '../lib/torchscript/module';
import { Tensor } from '../lib/torchscript/tensor';
import { tensorFromFile } from '../test/support/tensors';

type Mode = 'dispose' | 'gc';
const MB = 1024 * 1024;
const BAR_MB = 50;

interface Sample { cycle: number; rssMB: number; liveMB: number }
interface SoakResult { mode: Mode; cycles: number; warmup: number; samples: Sample[]; growthMB: number; liveEndMB: number; seconds: number }

function sample(cycle: number): Sample {
  return { cycle, rssMB: process.memoryUsage().rss / MB, liveMB: binding().memoryStats().cpuLiveBytes / MB };
}

async function soak(mode: Mode, cycles: number): Promise<SoakResult> {
  const fx = await ensureModel('mha_demo');
  const file = fx.variants.traced!;
  const x = tensorFromFile(fx.inputs[0]);
  // RSS is measured from after a warm-up: the first cycles map libtorch's code and caches.
  const warmup = Math.min(50, Math.floor(cycles / 10));
  const every = Math.max(1, Math.floor(cycles / 20));
  const samples: Sample[] = [];
  const t0 = performance.now();
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < warmup + cycles; i++) {
    if (i === warmup) {
      // The baseline after a full GC, as the final sample is.
      gc?.();
      await new Promise((r) => setTimeout(r, 100));
    }
    if (i === warmup || (i > warmup && (i - warmup) % every === 0)) samples.push(sample(i - warmup));
    const m = await Module.load(file);
    const out = (await m.forward(x)) as Tensor;
    if (mode === 'dispose') {
      out.dispose();
      m.dispose();
    }
  }
  gc?.();
  await new Promise((r) => setTimeout(r, 100));
  const end = sample(cycles);
  samples.push(end);
  x.dispose();
  const base = samples[0];
  return {
    mode, cycles, warmup, samples, growthMB: end.rssMB - base.rssMB, liveEndMB: end.liveMB,
    seconds: (performance.now() - t0) / 1000,
  };
}

function parseArgs(argv: string[]): { cycles: number; json: boolean; child?: Mode } {
  const at = (k: string) => { const i = argv.indexOf(k); return i >= 0 ? argv[i + 1] : undefined; };
  const cycles = Number(at('--cycles') ?? 1000);
  if (!Number.isSafeInteger(cycles) || cycles < 1) throw new Error('--cycles must be a positive integer');
  const child = at('--child') as Mode | undefined;
  return { cycles, json: argv.includes('--json'), child };
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  if (args.child) {
    process.stdout.write(JSON.stringify(await soak(args.child, args.cycles)) + '\n');
    return 0;
  }
  const results: SoakResult[] = [];
  for (const mode of ['dispose', 'gc'] as Mode[]) {
    // Each mode in a fresh process (RSS is per process); --expose-gc for the first and last samples.
    const r = spawnSync(process.execPath, ['--expose-gc', '--require', 'tsx/cjs', __filename, '--child', mode, '--cycles', String(args.cycles)], {
      encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 16 * MB,
    });
    if (r.status !== 0) throw new Error(`soak ${mode} exited ${r.status ?? r.signal}`);
    results.push(JSON.parse(r.stdout.trim().split('\n').at(-1)!) as SoakResult);
  }
  const passed = results.every((r) => (r.growthMB * MB) / 1e6 <= BAR_MB); // the bar is in MB (10^6 bytes)
  if (args.json) {
    process.stdout.write(JSON.stringify({ cycles: args.cycles, barMB: BAR_MB, passed, results }, null, 2) + '\n');
  } else {
    for (const r of results) {
      const first = r.samples[0];
      console.log(`${r.mode === 'dispose' ? 'with dispose()   ' : 'without dispose()'}  ${r.cycles} cycles in ${r.seconds.toFixed(1)} s: ` +
        `RSS ${first.rssMB.toFixed(1)} -> ${(first.rssMB + r.growthMB).toFixed(1)} MiB (${r.growthMB >= 0 ? '+' : ''}${r.growthMB.toFixed(1)} MiB), ` +
        `live native ${first.liveMB.toFixed(2)} -> ${r.liveEndMB.toFixed(2)} MiB; peak RSS ${Math.max(...r.samples.map((s) => s.rssMB)).toFixed(1)} MiB`);
    }
    console.log(`${passed ? 'PASS' : 'FAIL'}: RSS growth <= ${BAR_MB} MB in both modes`);
  }
  return passed ? 0 : 1;
}

main().then((c) => { process.exitCode = c; }, (e) => { console.error(e); process.exitCode = 3; });
