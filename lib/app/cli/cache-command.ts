// `torchgraph setup` and `torchgraph cache [--clean [models|torch|all]]`: finish an install made
// without install scripts, and show or clean the per-user cache (scripts/libtorch.js cacheDir()).
import * as fs from 'fs';
import * as path from 'path';
import { setupScript } from '../../torchscript/package-scripts';
import { cacheDir } from '../models';
import { EXIT_INTERNAL, EXIT_OK, UsageError } from './errors';
import type { CliIO } from './io';

export interface CacheEntry {
  /** torch, model, corpus, other */
  kind: string;
  /** What it holds: "torch 2.13.0-cpu", "mha_demo", ... */
  label: string;
  /** Relative to the cache folder. */
  path: string;
  bytes: number;
  /** A lock folder beside it: an install or export is running (or died). */
  busy: boolean;
}

/** Bytes of the regular files under `p` (links not followed). */
export function sizeOf(p: string): number {
  let st: fs.Stats;
  try { st = fs.lstatSync(p); } catch { return 0; }
  if (!st.isDirectory()) return st.isFile() ? st.size : 0;
  let sum = 0;
  for (const e of fs.readdirSync(p)) sum += sizeOf(path.join(p, e));
  return sum;
}

function modelLabel(dir: string): string {
  const names: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (!e.isDirectory()) continue;
    try {
      names.push((JSON.parse(fs.readFileSync(path.join(dir, e.name, 'manifest.json'), 'utf8')) as { name: string }).name);
    } catch { /* not a fixture */ }
  }
  if (fs.existsSync(path.join(dir, 'index.json'))) return `${names.length} attention configs`;
  return names.length ? names.join(', ') : '(incomplete export)';
}

/** Everything in the cache, one entry per torch install, model export and other folder. */
export function listCache(root: string): CacheEntry[] {
  if (!fs.existsSync(root)) return [];
  const out: CacheEntry[] = [];
  const add = (kind: string, label: string, rel: string) => {
    const abs = path.join(root, rel);
    // A scratch folder of a running install (.partial-PID) or clean (.deleting-PID) is busy too.
    const busy = fs.existsSync(`${abs}.lock`) || /\.(partial|deleting)-\d+$/.test(rel);
    out.push({ kind, label, path: rel, bytes: sizeOf(abs), busy });
  };
  for (const e of fs.readdirSync(root, { withFileTypes: true })) {
    if (e.name === 'torch' && e.isDirectory()) {
      for (const v of fs.readdirSync(path.join(root, 'torch'))) if (!v.endsWith('.lock')) add('torch', `torch ${v}`, path.join('torch', v));
    } else if (e.name === 'python') {
      add('torch', 'torch (pinned wheel, older layout)', e.name);
    } else if (e.name === 'models' && e.isDirectory()) {
      for (const k of fs.readdirSync(path.join(root, 'models'))) {
        if (!k.endsWith('.lock')) add('model', modelLabel(path.join(root, 'models', k)), path.join('models', k));
      }
    } else if (e.name === 'corpus-python') {
      add('corpus', 'corpus model libraries', e.name);
    } else if (!e.name.endsWith('.lock')) {
      add('other', e.name, e.name);
    }
  }
  return out;
}

export function formatBytes(n: number): string {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(2)} GiB`;
  if (n >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024).toFixed(1)} KiB`;
}

const CLEAN_KINDS: Record<string, readonly string[]> = { models: ['model'], torch: ['torch'], all: ['torch', 'model', 'corpus', 'other'] };

export async function cacheCommand(o: { clean?: string | boolean; json?: boolean }, io: CliIO): Promise<number> {
  const root = cacheDir();
  const what = o.clean === true ? 'all' : o.clean || undefined;
  if (what !== undefined && !Object.hasOwn(CLEAN_KINDS, what)) throw new UsageError(`--clean ${what}: give models, torch or all`);
  const entries = listCache(root);
  if (what === undefined) {
    if (o.json) {
      io.stdout(`${JSON.stringify({ dir: root, entries, bytes: entries.reduce((s, e) => s + e.bytes, 0) }, null, 2)}\n`);
      return EXIT_OK;
    }
    io.stdout(`torchgraph cache: ${root}${entries.length ? '' : ' (empty)'}\n`);
    const w = Math.max(0, ...entries.map((e) => e.label.length));
    for (const e of entries) {
      const busy = e.busy ? '  (in use)' : '';
      io.stdout(`  ${e.kind.padEnd(6)} ${e.label.padEnd(w)}  ${formatBytes(e.bytes).padStart(10)}  ${e.path}${busy}\n`);
    }
    io.stdout(`total ${formatBytes(entries.reduce((s, e) => s + e.bytes, 0))}\n`);
    return EXIT_OK;
  }
  let freed = 0;
  let kept = 0;
  for (const e of entries.filter((x) => CLEAN_KINDS[what].includes(x.kind))) {
    if (e.busy) { kept++; io.stderr(`torchgraph: kept ${e.path}: an install or export holds its lock\n`); continue; }
    // Renamed away first, so no reader ever finds a half-deleted torch or model where it looks.
    const abs = path.join(root, e.path);
    const trash = `${abs}.deleting-${process.pid}`;
    try {
      fs.renameSync(abs, trash);
      fs.rmSync(trash, { recursive: true, force: true });
      freed += e.bytes;
    } catch (err) {
      io.stderr(`torchgraph: could not remove ${abs}: ${(err as Error).message}\n`);
      return EXIT_INTERNAL;
    }
  }
  io.stdout(`torchgraph cache: removed ${what} from ${root}, freed ${formatBytes(freed)}${kept ? `; ${kept} in use kept` : ''}\n`);
  return EXIT_OK;
}

/** `torchgraph setup`: what the install script does (scripts/setup.js). */
export async function setupCommand(o: { quiet?: boolean }): Promise<number> {
  return (await setupScript().setup({ quiet: Boolean(o.quiet) })) === 0 ? EXIT_OK : EXIT_INTERNAL;
}
