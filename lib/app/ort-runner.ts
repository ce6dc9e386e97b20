// The child process that runs an ONNX model in onnxruntime-node for the bench
// (lib/app/ort-anchor.ts starts it): a process of its own, so that ORT's memory and thread pool
// never mix with libtorch's, and its peak RSS is its own. No torchgraph addon is loaded here.
//
//   node ort-runner.js CONFIG_JSON
//
// CONFIG: { ort: onnxruntime-node's folder, model: model.onnx, inputs: [.npy], expected: [.npy],
// threads, mode: 'serve' | 'peak', runs? }. One session, ORT_ENABLE_ALL ('all'), `threads`
// intra-op threads, sequential execution. 'serve' answers one JSON line per request on stdin:
//   first line  {"ready": true, "maxAbsDiff": D, ...} or {"error": "..."}
//   {"cmd": "time"}              -> {"ms": 12.3}       (one session.run, awaited, timed from JS)
//   {"cmd": "save", "dir": DIR}  -> {"files": [...]}   (the outputs as DIR/output_<i>.npy)
//   {"cmd": "quit"}
// 'peak' runs `runs` times and prints {"peakRssBytes": B, "medianMs": T}: load + runs, as
// lib/app/optimized-memory.ts measures the fused model's process.
import * as fs from 'fs';
import * as path from 'path';
import * as readline from 'readline';
import { readNpy, writeNpy, type NpyArray, type NpyData } from '../torchscript/npy';

export interface OrtRunnerConfig {
  ort: string; model: string; inputs: string[]; expected: string[]; threads: number; mode: 'serve' | 'peak'; runs?: number;
}

interface OrtTensor { type: string; dims: readonly number[]; data: unknown }
interface OrtSession {
  inputNames: readonly string[]; outputNames: readonly string[];
  run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>;
}
interface OrtModule {
  InferenceSession: { create(path: string, opts: object): Promise<OrtSession> };
  Tensor: new (type: string, data: NpyData, dims: readonly number[]) => OrtTensor;
  env: { versions?: Record<string, string> };
}

const ORT_TYPES: Record<NpyArray['dtype'], string> = {
  float32: 'float32', float64: 'float64', int64: 'int64', int32: 'int32', uint8: 'uint8', bool: 'bool',
};

function vmHwmBytes(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : -1;
}

function maxAbsDiff(got: OrtTensor[], want: NpyArray[]): number {
  if (got.length < want.length) return Infinity;
  let worst = 0;
  want.forEach((w, i) => {
    const g = got[i].data as ArrayLike<number>;
    if (g.length !== w.data.length) { worst = Infinity; return; }
    const wd = w.data as ArrayLike<number>;
    for (let k = 0; k < g.length; k++) worst = Math.max(worst, Math.abs(Number(g[k]) - Number(wd[k])));
  });
  return worst;
}

function toNpy(t: OrtTensor): NpyArray {
  const dtype = (Object.keys(ORT_TYPES) as NpyArray['dtype'][]).find((k) => ORT_TYPES[k] === t.type);
  if (!dtype) throw new Error(`output of type ${t.type} has no .npy dtype here`);
  return { dtype, shape: [...t.dims], data: t.data as NpyData };
}

async function main(config: OrtRunnerConfig): Promise<void> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const ort = require(config.ort) as OrtModule;
  const session = await ort.InferenceSession.create(config.model, {
    intraOpNumThreads: config.threads, interOpNumThreads: 1, graphOptimizationLevel: 'all', executionMode: 'sequential',
  });
  const arrays = config.inputs.map((f) => readNpy(f));
  if (arrays.length !== session.inputNames.length) {
    throw new Error(`${config.model} takes ${session.inputNames.length} inputs (${session.inputNames.join(', ')}), given ${arrays.length}`);
  }
  const tensor = (a: NpyArray) => new ort.Tensor(ORT_TYPES[a.dtype], a.data, a.shape);
  const feeds = Object.fromEntries(session.inputNames.map((n, i) => [n, tensor(arrays[i])]));
  const runOnce = async () => {
    const t0 = performance.now();
    const out = await session.run(feeds);
    return { ms: performance.now() - t0, outputs: session.outputNames.map((n) => out[n]) };
  };
  const first = await runOnce();
  if (config.mode === 'peak') {
    const times: number[] = [];
    for (let i = 1; i < (config.runs ?? 4); i++) times.push((await runOnce()).ms);
    times.sort((a, b) => a - b);
    process.stdout.write(`${JSON.stringify({ peakRssBytes: vmHwmBytes(), medianMs: times[Math.floor(times.length / 2)] ?? first.ms })}\n`);
    return;
  }
  const reply = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);
  reply({ ready: true, maxAbsDiff: maxAbsDiff(first.outputs, config.expected.map((f) => readNpy(f))), threads: config.threads,
    versions: ort.env.versions ?? {} });
  for await (const line of readline.createInterface({ input: process.stdin })) {
    try {
      const req = JSON.parse(line) as { cmd: string; dir?: string };
      if (req.cmd === 'quit') break;
      if (req.cmd === 'time') reply({ ms: (await runOnce()).ms });
      else if (req.cmd === 'save' && req.dir) {
        const files = (await runOnce()).outputs.map((t, i) => {
          const f = path.join(req.dir!, `output_${i}.npy`);
          writeNpy(f, toNpy(t));
          return f;
        });
        reply({ files });
      } else reply({ error: `unknown request ${line}` });
    } catch (e) {
      reply({ error: e instanceof Error ? e.message : String(e) });
    }
  }
}

if (require.main === module) {
  main(JSON.parse(process.argv[2] ?? '{}') as OrtRunnerConfig).then(() => process.exit(0), (e: Error) => {
    const msg = e.message ?? String(e);
    process.stdout.write(`${JSON.stringify({ error: msg })}\n`);
    process.stderr.write(`${e.stack ?? msg}\n`);
    process.exit(1);
  });
}
