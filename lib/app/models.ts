// Real TorchScript fixtures, exported on demand by scripts/export_models.py and cached by content.
//
// A fixture lives in <cache>/models/<key16>/ (or $TORCHGRAPH_MODELS_DIR/<key16>/; cacheDir()), where
// key16 is the start of sha256(export_models.py, vit.py, torch version, model name or spec). The
// exporter runs only when the manifest is missing; a lock folder keeps two processes from
// exporting the same key at once, and the exporter renames each finished folder into place, so a
// manifest is only ever seen complete. No native code is loaded here.
import { spawn } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  builtinModelNames, libtorchScript, pythonScriptPath, pythonScriptSource, type PythonInfo, type PythonScript,
} from '../torchscript/package-scripts';
import { NpyDtype } from '../torchscript/npy';
import { damagedFixtureFiles } from './cache-check';

/** The built-in models, by name: the one list, shared with scripts/export_models.py. */
export const MODEL_NAMES: readonly string[] = builtinModelNames();
/** A name in MODEL_NAMES. */
export type ModelName = string;
export const VARIANT_NAMES = ['traced', 'traced_grad', 'scripted'] as const;
/** traced: torch.jit.trace under no_grad (MHA fast path); traced_grad: traced with grad enabled
 * (slow path); scripted: torch.jit.script. All in eval mode. */
export type VariantName = (typeof VARIANT_NAMES)[number];

export interface TensorFile {
  /** Argument or output name, e.g. "x", "query", "attn_mask", "out", "attn_weights". */
  name: string;
  /** Absolute path of the .npy file. */
  file: string;
  shape: number[];
  dtype: NpyDtype;
}

export interface GraphSummary {
  /** Nodes of forward after inlining all calls, nested blocks included. */
  nodes: number;
  /** Nodes of the top-level block only. */
  topLevelNodes: number;
  /** Node count per kind, e.g. {"aten::_native_multi_head_attention": 12}. */
  kinds: Record<string, number>;
}

export interface ModelFixture {
  name: string;
  kind: 'model' | 'mha_variant';
  /** Where the model came from, e.g. "scripts/vit.py". */
  impl?: string;
  /** torch.__version__ of the exporter. */
  torch: string;
  seed: number;
  /** The fixture folder (absolute). */
  dir: string;
  manifestPath: string;
  /** The 16-hex-digit content key (cache folder name). */
  key: string;
  /** True when this call did not run the exporter. */
  cacheHit: boolean;
  /** Absolute paths of the exported TorchScript files; a variant that failed is absent (see errors). */
  variants: Partial<Record<VariantName, string>>;
  inputs: TensorFile[];
  /** Eager eval outputs under no_grad, flattened depth-first (None left out). */
  outputs: TensorFile[];
  parameters: { count: number; bytes: number; tensors: number };
  exportSeconds: number;
  /** Per variant (or "eager"/"reference"): the full Python error text. */
  errors: Partial<Record<VariantName | 'eager' | 'reference', string>>;
  warnings: Partial<Record<VariantName, string[]>>;
  /** Max |reloaded variant - eager| over all outputs (exporter's own check). */
  maxAbsDiff: Partial<Record<VariantName, number | null>>;
  graphs: Partial<Record<VariantName, GraphSummary>>;
  timings: Partial<Record<VariantName, number>>;
  /** The manifest as written. */
  raw: Record<string, unknown>;
}

/** One attention config of the variant matrix (see scripts/export_models.py for defaults). */
export interface MhaVariantSpec {
  /** Folder name: letters, digits, '_', '.', '-'; unique in a batch. */
  id: string;
  embed_dim: number;
  num_heads: number;
  batch_first?: boolean; // default false (PyTorch's default)
  bias?: boolean; // default true
  add_bias_kv?: boolean;
  add_zero_attn?: boolean;
  kdim?: number | null;
  vdim?: number | null;
  /** Ignored at export: everything runs in eval mode. */
  dropout?: number;
  /** Query length (default 5). */
  L?: number;
  /** Key/value length (default L; must equal L unless cross). */
  S?: number;
  /** Batch size; 0 = unbatched 2-D inputs (default 2). */
  B?: number;
  attn_mask?: null | 'bool2d' | 'float2d' | 'bool3d' | 'float3d' | 'causal2d';
  key_padding_mask?: null | 'bool' | 'float';
  is_causal?: boolean;
  need_weights?: boolean; // default true (PyTorch's default)
  average_attn_weights?: boolean; // default true
  /** Key/value are separate inputs (query, key, value); otherwise forward(x) calls mha(x, x, x). */
  cross?: boolean;
}

export interface MhaVariantFixture extends ModelFixture {
  kind: 'mha_variant';
  /** The config with every default filled in. */
  spec: Required<MhaVariantSpec>;
  /** Generated wrapper class, e.g. "mha_variants.V3_bias_kv" (see <batch dir>/mha_variants.py). */
  pythonClass: string;
}

export interface MhaVariantBatch {
  dir: string;
  key: string;
  cacheHit: boolean;
  torch: string;
  exportSeconds: number;
  fixtures: MhaVariantFixture[];
  byId: Record<string, MhaVariantFixture>;
}

export interface EnsureOptions {
  /** Receives the exporter's stderr lines (progress) while it runs. */
  log?: (line: string) => void;
  /** Give up waiting for another process's export after this long (default 30 min). */
  lockTimeoutMs?: number;
  /** Export only the variant the model runs as (its runVariant, else traced), as the CLI needs;
   * a complete export already in the cache is used as it is. */
  runVariantOnly?: boolean;
}

/** The absolute path of one exported variant; throws with the exporter's recorded error when
 * that variant could not be traced or scripted. */
export function variantPath(fx: ModelFixture, variant: VariantName): string {
  const p = fx.variants[variant];
  if (p) return p;
  const why = fx.errors[variant] ?? fx.errors.eager ?? 'no error recorded';
  throw new Error(`torchgraph: fixture ${fx.name} has no ${variant} variant: ${why}`);
}

// ---------------------------------------------------------------------------------------------

export type { PythonInfo };
export interface TorchInfo { version: string; python: PythonInfo | null; source?: string }

/** The cache of scripts/libtorch.js (TORCHGRAPH_CACHE, a checkout's .torchgraph/, else the per-user cache). */
export function cacheDir(): string {
  return libtorchScript().cacheDir();
}

export function modelsDir(): string {
  return process.env.TORCHGRAPH_MODELS_DIR ? path.resolve(process.env.TORCHGRAPH_MODELS_DIR) : path.join(cacheDir(), 'models');
}

const torchInfoCache = new Map<string, TorchInfo>();

/** libtorch.js's resolution, once per process and environment (TORCHGRAPH_PYTHON costs a Python start);
 * throws saying how to get a torch when there is none. */
export function torchInfo(): TorchInfo {
  const envKey = `${process.env.TORCHGRAPH_LIBTORCH ?? ''}\0${process.env.TORCHGRAPH_PYTHON ?? ''}`;
  const cached = torchInfoCache.get(envKey);
  if (cached) return cached;
  const info = resolveTorch();
  torchInfoCache.set(envKey, info);
  return info;
}

function resolveTorch(): TorchInfo {
  let info: TorchInfo | null;
  try {
    info = libtorchScript().current();
  } catch (e) {
    throw new Error(`torchgraph: cannot resolve torch for model export: ${(e as Error).message}`, { cause: e });
  }
  if (!info) {
    throw new Error('torchgraph: no torch found; model export needs a Python torch. Run `npx torchgraph setup` ' +
      '(it installs the pinned CPU wheel into the torchgraph cache), or set TORCHGRAPH_PYTHON to a Python that has torch.');
  }
  return info;
}

function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${stableJson((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

/** The content key: exporter sources, torch version and what is exported. */
export function contentKey(torchVersion: string, what: string): string {
  const h = crypto.createHash('sha256');
  h.update('torchgraph-fixtures/1\0');
  for (const f of ['export_models.py', 'vit.py'] as const) {
    h.update(pythonScriptSource(f));
    h.update('\0');
  }
  h.update(`${torchVersion}\0${what}`);
  return h.digest('hex').slice(0, 16);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Run `fn` holding the lock folder `lock`, unless `done()` turns true while waiting for it.
 * A lock whose owner process is gone (same host) is taken over. */
async function withLock<T>(lock: string, done: () => boolean, fn: () => Promise<T>, timeoutMs: number): Promise<T | undefined> {
  const start = Date.now();
  for (;;) {
    try {
      fs.mkdirSync(lock);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    if (done()) return undefined;
    let stale = false;
    try {
      const owner = JSON.parse(fs.readFileSync(path.join(lock, 'owner.json'), 'utf8')) as { pid: number; host: string };
      stale = owner.host === os.hostname() && !pidAlive(owner.pid);
    } catch {
      // owner.json not written yet (or lost): stale only if the lock is old
      try { stale = Date.now() - fs.statSync(lock).mtimeMs > 60_000; } catch { /* lock just went away */ }
    }
    if (stale) {
      fs.rmSync(lock, { recursive: true, force: true });
      continue;
    }
    if (Date.now() - start > timeoutMs) {
      throw new Error(`torchgraph: timed out after ${Math.round(timeoutMs / 1000)}s waiting for another export (lock ${lock}); ` +
        'remove the lock folder if no exporter is running');
    }
    await sleep(200);
  }
  try {
    const owner = { pid: process.pid, host: os.hostname(), started: new Date().toISOString() };
    fs.writeFileSync(path.join(lock, 'owner.json'), JSON.stringify(owner));
    if (done()) return undefined;
    return await fn();
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}

/** Run a Python exporter of scripts/ (default export_models.py) with `info`'s Python and path. */
export function runExporter(info: TorchInfo, args: string[], what: string, log?: (line: string) => void,
  scriptName: PythonScript = 'export_models.py'): Promise<void> {
  const python = info.python;
  if (!python) {
    return Promise.reject(new Error(`torchgraph: cannot export ${what}: ` +
      `torch comes from a bare libtorch (${info.source ?? 'TORCHGRAPH_LIBTORCH'}) ` +
      'and model export needs a Python torch: set TORCHGRAPH_PYTHON to a Python that has torch ' +
      '(or point TORCHGRAPH_LIBTORCH at a Python torch package).'));
  }
  const script = pythonScriptPath(scriptName);
  const env: NodeJS.ProcessEnv = { ...process.env, PYTHONDONTWRITEBYTECODE: '1', PYTHONUNBUFFERED: '1' };
  if (python.pythonPath) env.PYTHONPATH = [python.pythonPath, process.env.PYTHONPATH].filter(Boolean).join(path.delimiter);
  return new Promise<void>((resolve, reject) => {
    const child = spawn(python.exe, [script, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let tail = '';
    let partial = '';
    const keep = (s: string) => {
      tail = (tail + s).slice(-6000);
    };
    child.stdout.setEncoding('utf8').on('data', keep);
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      keep(s);
      if (log) {
        const lines = (partial + s).split('\n');
        partial = lines.pop() ?? '';
        for (const l of lines) log(l);
      }
    });
    child.on('error', (e) => reject(new Error(`torchgraph: cannot run Python '${python.exe}' to export ${what}: ${e.message}. ` +
      'Set TORCHGRAPH_PYTHON to a Python that has torch.')));
    child.on('close', (code, signal) => {
      if (log && partial) log(partial);
      if (code === 0) return resolve();
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      const lines = tail.trimEnd().split('\n').slice(-25).join('\n');
      reject(new Error(`torchgraph: exporting ${what} failed: ${python.exe} scripts/${scriptName} ${how}.\n` +
        `Exporter output (last lines):\n${lines}`));
    });
  });
}

function asTensorFiles(v: unknown, dir: string): TensorFile[] {
  if (!Array.isArray(v)) return [];
  return v.map((e: { name?: string; file: string; shape: number[]; dtype: NpyDtype }, i) => ({
    name: e.name ?? `${i}`, file: path.join(dir, e.file), shape: e.shape, dtype: e.dtype,
  }));
}

export function toFixture(manifestPath: string, key: string, cacheHit: boolean): ModelFixture {
  const raw = JSON.parse(fs.readFileSync(manifestPath, 'utf8')) as Record<string, unknown>;
  const dir = path.dirname(manifestPath);
  const variants: Partial<Record<VariantName, string>> = {};
  for (const [k, f] of Object.entries((raw.variants ?? {}) as Record<string, string>)) variants[k as VariantName] = path.join(dir, f);
  const fx: ModelFixture = {
    name: raw.name as string,
    kind: (raw.kind as ModelFixture['kind']) ?? 'model',
    impl: raw.impl as string | undefined,
    torch: raw.torch as string,
    seed: raw.seed as number,
    dir, manifestPath, key, cacheHit, variants,
    inputs: asTensorFiles(raw.inputs, dir),
    outputs: asTensorFiles(raw.outputs, dir),
    parameters: (raw.parameters as ModelFixture['parameters']) ?? { count: 0, bytes: 0, tensors: 0 },
    exportSeconds: raw.exportSeconds as number,
    errors: (raw.errors ?? {}) as ModelFixture['errors'],
    warnings: (raw.warnings ?? {}) as ModelFixture['warnings'],
    maxAbsDiff: (raw.maxAbsDiff ?? {}) as ModelFixture['maxAbsDiff'],
    graphs: (raw.graphs ?? {}) as ModelFixture['graphs'],
    timings: (raw.timings ?? {}) as ModelFixture['timings'],
    raw,
  };
  if (fx.kind === 'mha_variant') {
    return { ...fx, spec: raw.spec, pythonClass: raw.pythonClass } as MhaVariantFixture;
  }
  return fx;
}

const inflight = new Map<string, Promise<unknown>>();

/** Run the exporter for `key` unless `marker` exists; one export per key across processes. */
export function ensureExported(key: string, marker: string, what: string, opts: EnsureOptions,
  run: (keyDir: string) => Promise<void>): Promise<boolean> {
  const pending = inflight.get(key);
  if (pending) return pending.then(() => true);
  const p = (async () => {
    if (fs.existsSync(marker)) return true;
    const root = modelsDir();
    const keyDir = path.join(root, key);
    fs.mkdirSync(keyDir, { recursive: true });
    const ran = await withLock(path.join(root, `${key}.lock`), () => fs.existsSync(marker), async () => {
      await run(keyDir);
      if (!fs.existsSync(marker)) throw new Error(`torchgraph: the exporter finished but ${marker} is missing (exporting ${what})`);
      return true;
    }, opts.lockTimeoutMs ?? 30 * 60_000);
    return ran === undefined; // undefined: another process exported it meanwhile
  })();
  inflight.set(key, p);
  const clear = () => { inflight.delete(key); };
  p.then(clear, clear);
  return p;
}

/** Export (or find in the cache) one of the named fixture models. */
export async function ensureModel(name: string, opts: EnsureOptions = {}): Promise<ModelFixture> {
  if (!(MODEL_NAMES as readonly string[]).includes(name)) {
    throw new Error(`torchgraph: unknown fixture model '${name}' (known: ${MODEL_NAMES.join(', ')})`);
  }
  const info = torchInfo();
  const fullKey = contentKey(info.version, `model\0${name}`);
  const full = path.join(modelsDir(), fullKey, name, 'manifest.json');
  const only = Boolean(opts.runVariantOnly) && !fs.existsSync(full);
  const key = only ? contentKey(info.version, `model\0${name}\0run-variant`) : fullKey;
  const manifest = path.join(modelsDir(), key, name, 'manifest.json');
  const exportIt = () => ensureExported(key, manifest, `model ${name}`, opts,
    (keyDir) => runExporter(info, ['--out', keyDir, ...(only ? ['--run-variant-only'] : []), name], `model ${name}`, opts.log));
  const cacheHit = await exportIt();
  const fx = toFixture(manifest, key, cacheHit);
  const damaged = cacheHit ? damagedFixtureFiles(fx) : [];
  if (damaged.length === 0) return fx;
  // A damaged cache entry: set it aside (the exporter renames a finished folder into place, so
  // the old one must go) and export it again.
  const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
  log(`torchgraph: the cached ${name} is damaged (${damaged[0]}); exporting it again`);
  const aside = `${fx.dir}.damaged-${process.pid}-${Date.now()}`;
  try {
    fs.renameSync(fx.dir, aside);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e; // another process set it aside first
  }
  fs.rmSync(aside, { recursive: true, force: true });
  const again = toFixture(manifest, key, await exportIt());
  const still = damagedFixtureFiles(again);
  if (still.length) throw new Error(`torchgraph: exporting ${name} again left a damaged file: ${still[0]}`);
  return again;
}

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;

/** Export (or find in the cache) a batch of nn.MultiheadAttention configs, one Python process
 * for the whole batch. Configs that cannot be traced or scripted are recorded in their
 * fixture's `errors`; a config that cannot even run eagerly has only `errors.eager`. */
export async function ensureMhaVariants(specs: MhaVariantSpec[], opts: EnsureOptions = {}): Promise<MhaVariantBatch> {
  if (!Array.isArray(specs) || specs.length === 0) throw new Error('torchgraph: ensureMhaVariants needs a non-empty list of configs');
  const seen = new Set<string>();
  for (const s of specs) {
    if (!s || typeof s.id !== 'string' || !ID_RE.test(s.id)) {
      throw new Error(`torchgraph: bad attention config id ${JSON.stringify(s?.id)} (must match ${ID_RE})`);
    }
    if (seen.has(s.id)) throw new Error(`torchgraph: duplicate attention config id '${s.id}'`);
    seen.add(s.id);
  }
  const info = torchInfo();
  const specJson = stableJson(specs);
  const key = contentKey(info.version, `mha\0${specJson}`);
  const keyDir = path.join(modelsDir(), key);
  const indexPath = path.join(keyDir, 'index.json');
  const cacheHit = await ensureExported(key, indexPath, `${specs.length} attention configs`, opts, async (dir) => {
    const specPath = path.join(dir, 'spec.json');
    fs.writeFileSync(specPath, JSON.stringify(specs, null, 2));
    await runExporter(info, ['--out', dir, '--mha-variants', specPath], `${specs.length} attention configs`, opts.log);
  });
  const index = JSON.parse(fs.readFileSync(indexPath, 'utf8')) as {
    torch: string; exportSeconds: number; configs: { id: string; dir: string }[];
  };
  const fixtures = index.configs.map((c) => toFixture(path.join(keyDir, c.dir, 'manifest.json'), key, cacheHit) as MhaVariantFixture);
  const byId: Record<string, MhaVariantFixture> = {};
  for (const f of fixtures) byId[f.name] = f;
  return { dir: keyDir, key, cacheHit, torch: index.torch, exportSeconds: index.exportSeconds, fixtures, byId };
}

/** Run scripts/export_model.py with the resolved Python torch: FILE.py:FACTORY to a TorchScript file. */
export function exportUserModel(
  target: string, out: string, inputs: readonly string[], script: boolean, log?: (line: string) => void, output?: string, program = false,
): Promise<void> {
  const args = [
    target, '--out', out, ...inputs.flatMap((s) => ['--input', s]),
    ...(output !== undefined ? ['--output', output] : []), ...(script ? ['--script'] : []), ...(program ? ['--pt2'] : []),
  ];
  return runExporter(torchInfo(), args, target, log, 'export_model.py');
}
