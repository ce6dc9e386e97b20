// The package's files under scripts/ that lib/ uses at run time, declared once with their types:
// the plain-JavaScript setup scripts (npm's install script runs libtorch.js and setup.js before any
// TypeScript is built, so they stay CommonJS), the Python exporters lib/ starts, and the built-in
// model list. Every lib/ file reaches scripts/ through here; eslint.config.mjs fails a
// path.join(..., 'scripts', ...) anywhere else in lib/.
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { packageRoot } from './package-root';

/** The Python scripts lib/ runs or hashes into cache keys. */
export type PythonScript =
  | 'export_models.py' | 'vit.py' | 'export_model.py' | 'export_programs.py' | 'corpus.py' | 'anchors.py' | 'to_program.py'
  | 'onnx_export.py';

/** A Python that can import the resolved torch, and the PYTHONPATH it needs (null: none). */
export interface PythonInfo { exe: string; pythonPath: string | null }

/** What scripts/libtorch.js resolved: a libtorch, where it came from and the Python beside it. */
export interface ResolvedTorch {
  version: string;
  /** Where it came from, e.g. "TORCHGRAPH_PYTHON=/usr/bin/python3" or "cache". */
  source: string;
  root: string;
  libDir: string;
  cuda: boolean;
  /** null for a bare libtorch (no Python can import it). */
  python: PythonInfo | null;
}

/** scripts/libtorch.js: the one resolver of libtorch, shared with the build files and setup. */
export interface LibtorchScript {
  /** The resolution now (environment first), else the one setup recorded; null when there is none. */
  current(): ResolvedTorch | null;
  /** The libtorch the addon loads against in this process, starting no Python when it can. */
  forRuntime(): ResolvedTorch | null;
  /** Load libtorch's shared libraries from libDir into the process (Linux); the files loaded. */
  preload(libDir: string): string[];
  /** A git checkout of torchgraph (development), not an installed package. */
  isDevCheckout(): boolean;
  /** TORCHGRAPH_CACHE, a checkout's .torchgraph/, else the per-user cache. */
  cacheDir(): string;
  /** How the last setup of this copy ended (setup.js records it); null when it never ran. */
  lastSetup(): SetupResult | null;
}

/** How the last setup of this copy of torchgraph ended (scripts/setup.js writes it). */
export interface SetupResult { ok: boolean; error?: string; at?: string }

/** scripts/setup.js: what npm's install script runs (resolve or install torch, build or check the addon). */
export interface SetupScript {
  /** 0 on success, 1 after printing what failed and its fix. */
  setup(o: { quiet?: boolean }): Promise<number>;
}

/** Where scripts/setup-corpus.js installed the corpus' model libraries. */
export interface CorpusPython {
  exe: string; torchPath: string; libPath: string; visionPath: string; torchVersion: string;
  /** torchvision's files emptied so that its Python code imports. */
  torchvisionEmptied?: string[];
  versions: Record<string, string>;
  /** Whether this call ran pip. */
  installed: boolean;
  seconds: number;
}

/** scripts/setup-corpus.js: installs the pinned model libraries of the real-model corpus once. */
export interface CorpusSetupScript {
  ensureCorpusPython(o: { log?: (m: string) => void }): CorpusPython;
}

function scriptFile(name: string): string {
  return path.join(packageRoot(), 'scripts', name);
}

function requireScript<T>(name: 'libtorch.js' | 'setup.js' | 'setup-corpus.js'): T {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(scriptFile(name)) as T;
}

export const libtorchScript = (): LibtorchScript => requireScript<LibtorchScript>('libtorch.js');
export const setupScript = (): SetupScript => requireScript<SetupScript>('setup.js');
export const corpusSetupScript = (): CorpusSetupScript => requireScript<CorpusSetupScript>('setup-corpus.js');

/** The path of a Python script, to run it. */
export function pythonScriptPath(name: PythonScript): string {
  return scriptFile(name);
}

/** A Python script's bytes, for a cache key that changes when the exporter does. */
export function pythonScriptSource(name: PythonScript): Buffer {
  return fs.readFileSync(scriptFile(name));
}

/** sha256 (hex) of a Python script's bytes. */
export function pythonScriptHash(name: PythonScript): string {
  return crypto.createHash('sha256').update(pythonScriptSource(name)).digest('hex');
}

/** The built-in models' names (scripts/builtin-models.json, the list export_models.py reads too). */
export function builtinModelNames(): string[] {
  return JSON.parse(fs.readFileSync(scriptFile('builtin-models.json'), 'utf8')) as string[];
}
