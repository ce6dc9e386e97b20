// onnxruntime-node as a bench anchor: the runtime a Node user would most likely pick instead of
// torchgraph, on the same weights. scripts/onnx_export.py rebuilds the model as the PyTorch
// anchors do (scripts/anchors.py: the TorchScript file's weights, checked), exports it with
// torch.onnx.export(dynamo=True), applies onnxscript's ORT fusions and ORT's transformer
// optimizer, keeps the first of those candidates within 1e-4 of the TorchScript file's outputs
// (cached by content under <cache>/onnx/), and lib/app/ort-runner.ts runs it in a child process
// with ORT_ENABLE_ALL on as many intra-op threads as libtorch uses, one timed run per request,
// so that the bench interleaves it with its own runs. Peak RSS is measured apart: a fresh
// ORT-node-only process against a fresh fused-only (optimize()) process, on the same input files.
import { spawn, type ChildProcessWithoutNullStreams } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import * as readline from 'readline';
import type { ExternalRunner } from '../pipeline/compare';
import type { InputSpec } from '../torchscript/propagate-shapes';
import { runtimeInfo } from '../torchscript/runtime-info';
import { pythonScriptPath, pythonScriptSource } from '../torchscript/package-scripts';
import { anchorName, type RebuiltAnchorTarget } from './anchors';
import { cacheDir } from './models';
import { ensureOnnxPython, ensureOrtNode, ONNX_PYTHON_PINS, ORT_NODE_VERSION } from './ort-install';
import type { OrtRunnerConfig } from './ort-runner';
import { measureInFreshProcess } from './optimized-memory';
import { runChildForJson } from './child-json';

/** The external run's name in the bench's tables (`fused / ORT-node`). */
export const ORT_RUNNER = 'ORT-node';

/** A model exported to ONNX and checked: its folder's files and scripts/onnx_export.py's record. */
export interface OnnxExport {
  dir: string; model: string; inputs: string[]; expected: string[];
  info: {
    chosen: string; maxAbsDiff: number; candidates: Record<string, { maxAbsDiff: number; ms: number }>; failed: Record<string, string>;
  };
}

/** ORT's transformer optimizer's model type for a target: from the built-in's name or the fixture's family. */
export function onnxModelType(target: RebuiltAnchorTarget): string {
  if ('builtin' in target) return target.builtin.startsWith('vit') ? 'vit' : 'bert';
  const family = (JSON.parse(fs.readFileSync(target.manifest, 'utf8')) as { family?: string }).family ?? '';
  return ({ bert: 'bert', roberta: 'bert', gpt2: 'gpt2', vit: 'vit' } as Record<string, string>)[family] ?? 'none';
}

function exportArgs(target: RebuiltAnchorTarget): string[] {
  if ('builtin' in target) {
    const inputs = target.inputs.flatMap((s) => ['--input', `${s.shape.join('x')}:${s.dtype}`]);
    return ['--builtin', target.builtin, '--file', target.file, ...inputs];
  }
  return ['--fixture', target.manifest, ...(target.file ? ['--file', target.file] : [])];
}

/** What decides the export: the scripts, the pins, the model file (path, size, time) and the inputs. */
function exportKey(target: RebuiltAnchorTarget, args: string[]): string {
  const h = crypto.createHash('sha256');
  for (const f of ['onnx_export.py', 'anchors.py', 'export_models.py', 'corpus.py'] as const) h.update(pythonScriptSource(f));
  const file = 'builtin' in target ? target.file : target.file ?? target.manifest;
  const st = fs.statSync(file);
  h.update(JSON.stringify({ args, size: st.size, mtime: st.mtimeMs, pins: ONNX_PYTHON_PINS, torch: runtimeInfo().torchVersion }));
  return h.digest('hex').slice(0, 16);
}

function readExport(dir: string): OnnxExport | undefined {
  const record = path.join(dir, 'onnx.json');
  if (!fs.existsSync(record)) return undefined;
  const info = JSON.parse(fs.readFileSync(record, 'utf8')) as OnnxExport['info'] & { inputNames: string[] };
  const files = fs.readdirSync(dir);
  const numbered = (prefix: string) => files.filter((f) => f.startsWith(prefix)).sort((a, b) => parseInt(a.slice(prefix.length), 10)
    - parseInt(b.slice(prefix.length), 10)).map((f) => path.join(dir, f));
  return { dir, model: path.join(dir, 'model.onnx'), inputs: numbered('input_'), expected: numbered('expected_'), info };
}

/** The target's model as ONNX (exported once per content key), checked within 1e-4 of its TorchScript file. */
export async function exportOnnx(target: RebuiltAnchorTarget, log: (s: string) => void = () => {}): Promise<OnnxExport> {
  const args = [...exportArgs(target), '--model-type', onnxModelType(target), '--threads', String(runtimeInfo().threads)];
  const dir = path.join(cacheDir(), 'onnx', exportKey(target, args));
  const cached = readExport(dir);
  if (cached) return cached;
  const py = ensureOnnxPython('pythonPath' in target ? target.pythonPath : undefined, log);
  log(`exporting ${anchorName(target)} to ONNX (torch.onnx.export, dynamo) into ${dir}`);
  await new Promise<void>((resolve, reject) => {
    const child = spawn(py.exe, [pythonScriptPath('onnx_export.py'), '--out', dir, ...args],
      { env: { ...process.env, PYTHONPATH: py.pythonPath }, stdio: ['ignore', 'ignore', 'pipe'] });
    let tail = '';
    readline.createInterface({ input: child.stderr }).on('line', (l) => {
      tail = `${tail}\n${l}`.slice(-2000);
      if (l.startsWith('onnx_export:')) log(l);
    });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve()
      : reject(new Error(`the ONNX export of ${anchorName(target)} failed (exit ${code}): ${tail.trim().split('\n').pop() ?? ''}`))));
  });
  const done = readExport(dir);
  if (!done) throw new Error(`the ONNX export of ${anchorName(target)} wrote no ${path.join(dir, 'onnx.json')}`);
  return done;
}

function runnerCommand(config: OrtRunnerConfig): string[] {
  const file = path.join(__dirname, `ort-runner${path.extname(__filename)}`);
  // From a checkout under tsx the runner is TypeScript too (mocha's hook is not in execArgv).
  const loader = file.endsWith('.ts') ? ['--require', require.resolve('tsx/cjs')] : [];
  return [...loader, file, JSON.stringify(config)];
}

function runnerConfig(exp: OnnxExport, mode: OrtRunnerConfig['mode']): OrtRunnerConfig {
  return { ort: ensureOrtNode(), model: exp.model, inputs: exp.inputs, expected: exp.expected, threads: runtimeInfo().threads, mode };
}

export interface OrtAnchor {
  runner: ExternalRunner;
  /** onnxruntime-node's output's max abs diff from the TorchScript file's (the export's expected outputs). */
  maxAbsDiff: number;
  versions: Record<string, string>;
  /** One more run, its outputs written as `dir`/output_<i>.npy. */
  saveOutputs(dir: string): Promise<string[]>;
  close(): void;
}

/** onnxruntime-node on `exp`, in a child process that times one run per request. */
export async function startOrtNode(exp: OnnxExport): Promise<OrtAnchor> {
  const command = runnerCommand(runnerConfig(exp, 'serve'));
  const child = spawn(process.execPath, command, { stdio: ['pipe', 'pipe', 'pipe'] }) as ChildProcessWithoutNullStreams;
  const waiting: ((line: string) => void)[] = [];
  readline.createInterface({ input: child.stdout }).on('line', (l) => waiting.shift()?.(l));
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-2000); });
  child.on('exit', (code) => {
    for (const w of waiting.splice(0)) w(JSON.stringify({ error: `ORT-node exited ${code}: ${stderr.trim()}` }));
  });
  const ask = (req?: object) => new Promise<Record<string, unknown>>((resolve) => {
    waiting.push((l) => resolve(JSON.parse(l) as Record<string, unknown>));
    if (req) child.stdin.write(`${JSON.stringify(req)}\n`);
  });
  const ready = await ask();
  if (!ready.ready) { child.kill(); throw new Error(`onnxruntime-node on ${exp.model}: ${String(ready.error)}`); }
  const answer = async (req: object, key: string) => {
    const r = await ask(req);
    if (r[key] === undefined) throw new Error(`onnxruntime-node on ${exp.model}: ${String(r.error ?? JSON.stringify(r))}`);
    return r[key];
  };
  return {
    runner: { name: ORT_RUNNER, time: async () => (await answer({ cmd: 'time' }, 'ms')) as number, pid: child.pid },
    maxAbsDiff: ready.maxAbsDiff as number,
    versions: ready.versions as Record<string, string>,
    saveOutputs: async (dir) => (await answer({ cmd: 'save', dir }, 'files')) as string[],
    close: () => { child.stdin.end(`${JSON.stringify({ cmd: 'quit' })}\n`); },
  };
}

export interface PeakPair { fusedPeakBytes: number; ortPeakBytes: number; fusedMs: number; ortMs: number }

/** Peak RSS of a fresh ORT-node-only process (load + 4 runs) against a fresh fused-only process
 * (load + optimize() + 4 runs, lib/app/optimized-memory.ts), on the export's input files. */
export async function measurePeaks(exp: OnnxExport, file: string, inputs: InputSpec[]): Promise<PeakPair> {
  const fused = await measureInFreshProcess('optimized', file, inputs, exp.inputs);
  const peak = await runChildForJson(process.execPath, runnerCommand({ ...runnerConfig(exp, 'peak'), runs: 4 }), 2000);
  const r = peak.result as { peakRssBytes?: number; medianMs: number; error?: string } | undefined;
  if (peak.code !== 0 || !r?.peakRssBytes) {
    throw new Error(`the ORT-node peak process exited ${peak.code}: ${r?.error ?? peak.stderrTail}`);
  }
  const ort = { peakRssBytes: r.peakRssBytes, medianMs: r.medianMs };
  return { fusedPeakBytes: fused.peakRssBytes, ortPeakBytes: ort.peakRssBytes, fusedMs: fused.medianMs, ortMs: ort.medianMs };
}

/** The ORT-node anchor as a bench case's extra runners (lib/app/bench.ts' startExternal). */
export async function ortExternal(target: RebuiltAnchorTarget, log: (s: string) => void): Promise<{ anchor: OrtAnchor; exp: OnnxExport }> {
  const exp = await exportOnnx(target, log);
  const anchor = await startOrtNode(exp);
  log(`${anchorName(target)}: onnxruntime-node ${ORT_NODE_VERSION} ready on the ${exp.info.chosen} model `
    + `(export ${exp.info.maxAbsDiff.toExponential(1)}, `
    + `ORT-node ${anchor.maxAbsDiff.toExponential(1)} from the TorchScript file's outputs; ${runtimeInfo().threads} intra-op threads)`);
  return { anchor, exp };
}

export interface OrtRow { name: string; fusedMs: number; ortMs: number; maxAbsDiff: number; peaks?: PeakPair }

const MiB = (b: number) => (b / 2 ** 20).toFixed(0);

/** ours (fused) / ORT-node, medians of the same repetitions, and the two processes' peak RSS. */
export function formatOrtTable(rows: readonly OrtRow[]): string {
  const head = ['case', 'fused ms', 'ORT-node ms', 'fused / ORT-node', 'ORT-node diff', 'peak RSS MiB fused-only / ORT-node-only'];
  const body = rows.map((r) => [
    r.name, r.fusedMs.toFixed(1), r.ortMs.toFixed(1), (r.fusedMs / r.ortMs).toFixed(3), r.maxAbsDiff.toExponential(1),
    r.peaks ? `${MiB(r.peaks.fusedPeakBytes)} / ${MiB(r.peaks.ortPeakBytes)}` : 'n/a']);
  const all = [head, ...body];
  const widths = head.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((x, i) => (i === 0 ? x.padEnd(widths[i]) : x.padStart(widths[i]))).join('  ');
  const ratios = rows.map((r) => r.fusedMs / r.ortMs);
  const geo = ratios.length ? Math.exp(ratios.reduce((a, x) => a + Math.log(x), 0) / ratios.length) : NaN;
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line),
    `geometric mean fused / ORT-node: ${geo.toFixed(3)} `
    + `(onnxruntime-node ${ORT_NODE_VERSION}, ${runtimeInfo().threads} intra-op threads each)`].join('\n');
}
