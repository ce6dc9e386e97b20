// The bench's anchors: what a PyTorch user would run instead (eager, torch.compile with inductor,
// with and without freezing), on the same weights, in a Python process of the resolved torch
// (scripts/anchors.py) that times one run per request, so that the bench interleaves them with
// its own runs. Built-in models and corpus fixtures alike: the Python side rebuilds the class,
// loads the file's weights and proves it (eager's output within 1e-4 of the file's). A user's own
// file is run as it is (torch.jit.load, or torch.export.load(...).module() for a .pt2) on the
// inputs torchgraph ran it on. Also this machine's GEMM peak, the limit achieved GFLOP/s are
// measured against.
import { spawn, type ChildProcessWithoutNullStreams } from 'child_process';
import * as path from 'path';
import * as readline from 'readline';
import { pythonScriptPath } from '../torchscript/package-scripts';
import type { InputSpec } from '../torchscript/propagate-shapes';
import type { ExternalRunner } from '../pipeline/compare';
import { runtimeInfo } from '../torchscript/runtime-info';
import { torchInfo, type PythonInfo } from './models';

export const ANCHOR_MODES = ['eager', 'inductor', 'inductor_freezing'] as const;
export type AnchorMode = (typeof ANCHOR_MODES)[number];

export interface AnchorProcess {
  /** Seconds each mode took to prepare (compile and one warm run). */
  compileSeconds: Record<string, number>;
  /** Max abs diff of the rebuilt model's eager output from the TorchScript file's (the fixture's
   * expected output, or the built-in module's own): the proof both sides hold the same weights. */
  eagerMaxAbsDiff?: number;
  /** Each mode's max abs diff from the TorchScript file's outputs (inductor's rewrites carry float32 noise too). */
  maxAbsDiffs: Record<string, number>;
  /** What each mode runs (e.g. "torch.jit.load, ..."), as scripts/anchors.py describes it. */
  routes: Record<string, string>;
  /** Modes that could not be prepared (torch.compile failing on the model), with the reason. */
  skipped: Record<string, string>;
  runners: ExternalRunner[];
  /** This machine's float32 GEMM rate (2048 x 2048), GFLOP/s. */
  gemmGflops(): Promise<number>;
  close(): void;
}

function resolvedPython(): PythonInfo {
  const py = torchInfo().python;
  if (!py) throw new Error('bench --anchors needs a Python torch; this torchgraph resolved a libtorch without one (set TORCHGRAPH_PYTHON)');
  return py;
}

/** One request/reply line protocol over the child's stdin/stdout. */
function lineChannel(child: ChildProcessWithoutNullStreams): (req?: object) => Promise<Record<string, unknown>> {
  const lines = readline.createInterface({ input: child.stdout });
  const waiting: ((line: string) => void)[] = [];
  lines.on('line', (l) => waiting.shift()?.(l));
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000); });
  child.on('exit', (code) => {
    for (const w of waiting.splice(0)) w(JSON.stringify({ error: `anchors exited ${code}: ${stderr.trim().split('\n').pop() ?? ''}` }));
  });
  return (req) => new Promise((resolve) => {
    waiting.push((l) => resolve(JSON.parse(l) as Record<string, unknown>));
    if (req) child.stdin.write(JSON.stringify(req) + '\n');
  });
}

/** What the anchors run: a built-in model rebuilt with the weights of its TorchScript `file`, on
 * seeded inputs of `inputs`; a corpus fixture (its manifest.json) rebuilt with the weights of its
 * traced.pt (or of `file`), on its own input files, with the corpus libraries on `pythonPath`; or
 * a user's own `model` file as it is, on the .npy `inputFiles` torchgraph ran it on, compared
 * with torchgraph's outputs `refFiles`. */
/** A model PyTorch rebuilds from its own class: a built-in model or a corpus fixture. */
export type RebuiltAnchorTarget =
  | { builtin: string; file: string; inputs: readonly InputSpec[] }
  | { manifest: string; pythonPath: string; file?: string };

/** A rebuilt model, or a user's file run as it is on the inputs the bench wrote. */
export type AnchorTarget =
  | RebuiltAnchorTarget
  | { model: string; inputFiles: readonly string[]; refFiles: readonly string[] };

function anchorArgs(target: AnchorTarget | undefined): string[] {
  if (!target) return [];
  if ('model' in target) {
    const files = (flag: string, fs: readonly string[]) => fs.flatMap((f) => [flag, f]);
    return ['--model', target.model, ...files('--input-npy', target.inputFiles), ...files('--ref-npy', target.refFiles)];
  }
  if ('builtin' in target) {
    const inputArgs = target.inputs.flatMap((s) => ['--input', `${s.shape.join('x')}:${s.dtype}`]);
    return ['--builtin', target.builtin, '--file', target.file, ...inputArgs];
  }
  return ['--fixture', target.manifest, ...(target.file ? ['--file', target.file] : [])];
}

/** A short name for messages: the built-in's name, the fixture's folder, or the file's name. */
export function anchorName(target: AnchorTarget | undefined): string {
  if (!target) return 'GEMM';
  if ('model' in target) return path.basename(target.model);
  return 'builtin' in target ? target.builtin : path.basename(path.dirname(target.manifest));
}

/** Starts the anchors of `target` (none: only the GEMM peak), on as many threads as this
 * process's libtorch. Fails when a rebuilt model's eager output is over 1e-4 from the file's (its
 * weights do not fit); a compiled mode that fails is skipped (`skipped` says why). */
export async function startAnchors(target: AnchorTarget | undefined, modes: readonly AnchorMode[] = ANCHOR_MODES): Promise<AnchorProcess> {
  const py = resolvedPython();
  const name = anchorName(target);
  const args = [pythonScriptPath('anchors.py'), '--modes', modes.join(','), ...anchorArgs(target),
    '--threads', String(runtimeInfo().threads)];
  const pythonPath = target && 'pythonPath' in target ? target.pythonPath : py.pythonPath;
  const env = { ...process.env, ...(pythonPath ? { PYTHONPATH: pythonPath } : {}) };
  const child = spawn(py.exe, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
  const ask = lineChannel(child);
  const ready = await ask();
  if (ready.error) { child.kill(); throw new Error(`anchors for ${name}: ${String(ready.error)}`); }
  const request = async (req: object, key: string): Promise<number> => {
    const r = await ask(req);
    if (typeof r[key] !== 'number') throw new Error(`anchors for ${name}: ${String(r.error ?? JSON.stringify(r))}`);
    return r[key] as number;
  };
  return {
    compileSeconds: (ready.compileSeconds ?? {}) as Record<string, number>,
    ...(typeof ready.eagerMaxAbsDiff === 'number' ? { eagerMaxAbsDiff: ready.eagerMaxAbsDiff } : {}),
    maxAbsDiffs: (ready.maxAbsDiffs ?? {}) as Record<string, number>,
    routes: (ready.routes ?? {}) as Record<string, string>,
    skipped: (ready.skipped ?? {}) as Record<string, string>,
    runners: target
      ? (ready.modes as string[]).map((mode) => ({ name: mode, time: () => request({ cmd: 'time', mode }, 'ms'), pid: child.pid }))
      : [],
    gemmGflops: () => request({ cmd: 'gemm' }, 'gflops'),
    close: () => { child.stdin.end(JSON.stringify({ cmd: 'quit' }) + '\n'); },
  };
}
