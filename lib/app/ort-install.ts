// What the bench's onnxruntime-node anchor needs, installed on first use into torchgraph's cache
// (a checkout's .torchgraph/), never into the library's dependencies: a torchgraph user does not
// need ONNX Runtime, and onnxruntime-node's 300 MB (and its install script, which downloads GPU
// providers and fails offline) would land in every install as a dependency.
// - onnxruntime-node, pinned, with npm into <cache>/ort-node/ (ONNXRUNTIME_NODE_INSTALL=skip: its
//   CPU library ships in the npm package);
// - onnx, onnxscript and onnxruntime for Python, pinned, with pip --no-deps into
//   <cache>/onnx-python/ beside (never into) the resolved torch, as scripts/setup-corpus.js does.
// Each is built in a temporary folder and renamed into place with a stamp of what it holds, so a
// folder with a stamp is complete and a half-finished install is never used.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { cacheDir, torchInfo } from './models';

export const ORT_NODE_VERSION = '1.31.1';

/** The Python side, resolved with pip once (its local wheels) and pinned; numpy and packaging
 * too, which the torch folder lacks. sympy and typing_extensions come with torch. */
export const ONNX_PYTHON_PINS = [
  'onnx==1.23.1', 'onnxscript==0.7.2', 'onnx_ir==1.0.0', 'onnxruntime==1.30.0', 'ml_dtypes==0.6.0', 'protobuf==7.36.2',
  'flatbuffers==25.12.19', 'numpy==2.4.6', 'packaging==26.3',
];

export class OrtInstallError extends Error {}

function readStamp(dir: string): unknown {
  try { return JSON.parse(fs.readFileSync(path.join(dir, 'stamp.json'), 'utf8')); } catch { return null; }
}

/** `dir` holding what `want` says, built by `build(tmp)` when it does not yet. */
function installOnce(dir: string, want: object, what: string, build: (tmp: string) => void, log: (s: string) => void): void {
  if (JSON.stringify(readStamp(dir)) === JSON.stringify(want)) return;
  log(`installing ${what} into ${dir}`);
  const tmp = `${dir}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  try {
    build(tmp);
    fs.writeFileSync(path.join(tmp, 'stamp.json'), JSON.stringify(want));
    // Another process installed the same meanwhile: keep theirs (it may be in use).
    if (JSON.stringify(readStamp(dir)) === JSON.stringify(want)) return;
    const old = `${dir}.old-${process.pid}`;
    if (fs.existsSync(dir)) fs.renameSync(dir, old);
    fs.renameSync(tmp, dir);
    fs.rmSync(old, { recursive: true, force: true });
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

function run(exe: string, args: string[], env: NodeJS.ProcessEnv, what: string): void {
  const r = spawnSync(exe, args, { encoding: 'utf8', maxBuffer: 64 << 20, env });
  if (r.status !== 0) {
    const out = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n').slice(-6).join('\n');
    throw new OrtInstallError(`${what} failed (${r.error ? r.error.message : `exit ${r.status}`}): ${out}`);
  }
}

/** The path to require onnxruntime-node from (installed once into <cache>/ort-node/). */
export function ensureOrtNode(log: (s: string) => void = () => {}): string {
  const dir = path.join(cacheDir(), 'ort-node');
  const want = { package: 'onnxruntime-node', version: ORT_NODE_VERSION };
  installOnce(dir, want, `onnxruntime-node ${ORT_NODE_VERSION}`, (tmp) => {
    fs.writeFileSync(path.join(tmp, 'package.json'), JSON.stringify({ private: true }));
    const env = { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip', ONNXRUNTIME_NODE_INSTALL_CUDA: 'skip' };
    const args = ['install', '--prefix', tmp, '--no-audit', '--no-fund', '--no-package-lock', '--loglevel', 'error',
      `onnxruntime-node@${ORT_NODE_VERSION}`];
    run(process.platform === 'win32' ? 'npm.cmd' : 'npm', args, env, `npm install onnxruntime-node@${ORT_NODE_VERSION}`);
  }, log);
  return path.join(dir, 'node_modules', 'onnxruntime-node');
}

/** The Python and its PYTHONPATH for scripts/onnx_export.py: the resolved torch first, then
 * `extraPath` (e.g. the corpus' libraries), then <cache>/onnx-python/ (installed once). */
export function ensureOnnxPython(extraPath: string | undefined, log: (s: string) => void = () => {}): { exe: string; pythonPath: string } {
  const py = torchInfo().python;
  if (!py) {
    throw new OrtInstallError('the ONNX export needs a Python torch; this torchgraph resolved a libtorch without one '
      + '(set TORCHGRAPH_PYTHON)');
  }
  const dir = path.join(cacheDir(), 'onnx-python');
  const version = spawnSync(py.exe, ['-c', 'import sys; print("%d.%d" % sys.version_info[:2])'], { encoding: 'utf8' }).stdout.trim();
  const want = { pins: ONNX_PYTHON_PINS, python: version };
  installOnce(dir, want, `${ONNX_PYTHON_PINS.join(', ')} (pip)`, (tmp) => {
    // --retries/--timeout: where the public index is unreachable (local wheel folders), pip's default retries cost minutes.
    const args = ['-m', 'pip', 'install', '--no-deps', '--no-compile', '--only-binary', ':all:', '--disable-pip-version-check',
      '--no-warn-script-location', '--retries', '1', '--timeout', '10', '--target', path.join(tmp, 'lib'), ...ONNX_PYTHON_PINS];
    run(py.exe, args, { ...process.env, PIP_NO_INPUT: '1' }, 'pip install of the ONNX libraries');
  }, log);
  const parts = [...(py.pythonPath ? [py.pythonPath] : []), ...(extraPath ? [extraPath] : []), path.join(dir, 'lib')];
  return { exe: py.exe, pythonPath: parts.join(path.delimiter) };
}
