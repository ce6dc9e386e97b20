// torch.export twins (.pt2) of the built-in models, exported on demand by
// scripts/export_programs.py and cached by content in a key of their own (the exporter's
// sources, export_models.py's model builders, vit.py and the torch version), next to the
// TorchScript fixtures. The manifest's outputs are torch.export.load(program).module()'s.
import * as fs from 'fs';
import * as path from 'path';
import {
  contentKey, ensureExported, modelsDir, MODEL_NAMES, runExporter, toFixture, torchInfo, type EnsureOptions, type ModelFixture,
} from './models';
import { pythonScriptHash } from '../torchscript/package-scripts';

export interface ProgramFixture extends ModelFixture {
  /** The exported .pt2 file. */
  program: string;
}

/** Programs with no TorchScript twin (scripts/export_programs.py PROGRAMS): symbolic sizes. */
export const PROGRAM_ONLY: readonly string[] = ['vit_b_16_dynamic_batch', 'rotary_grad_region'];

function programKey(torchVersion: string, name: string): string {
  const h = pythonScriptHash('export_programs.py');
  return contentKey(torchVersion, `program\0${h}\0${name}`);
}

/** Export (or find in the cache) the .pt2 twin of a built-in model. */
export async function ensureProgram(name: string, opts: EnsureOptions = {}): Promise<ProgramFixture> {
  if (!(MODEL_NAMES as readonly string[]).includes(name) && !PROGRAM_ONLY.includes(name)) {
    throw new Error(`torchgraph: unknown fixture model '${name}' (known: ${[...MODEL_NAMES, ...PROGRAM_ONLY].join(', ')})`);
  }
  const info = torchInfo();
  const key = programKey(info.version, name);
  const manifest = path.join(modelsDir(), key, name, 'manifest.json');
  const cacheHit = await ensureExported(key, manifest, `program ${name}`, opts,
    (keyDir) => runExporter(info, ['--out', keyDir, name], `program ${name}`, opts.log, 'export_programs.py'));
  const fx = toFixture(manifest, key, cacheHit);
  return { ...fx, program: path.join(fx.dir, 'program.pt2') };
}

/** .pt2 files this reader must refuse, all written by PyTorch (scripts/export_programs.py --bad). */
export async function ensureBadPrograms(
  opts: EnsureOptions = {},
): Promise<{ dir: string; cond: string; newer: string; checkpoint: string; plain: string }> {
  const info = torchInfo();
  const key = programKey(info.version, 'bad');
  const dir = path.join(modelsDir(), key, 'bad');
  await ensureExported(key, path.join(dir, 'manifest.json'), 'bad programs', opts,
    (keyDir) => runExporter(info, ['--out', keyDir, '--bad'], 'bad programs', opts.log, 'export_programs.py'));
  const f = (n: string) => path.join(dir, n);
  return { dir, cond: f('cond.pt2'), newer: f('newer.pt2'), checkpoint: f('checkpoint.pt2'), plain: f('plain.pt2') };
}

/** Corpus models exported as programs (ids of scripts/corpus.py, e.g. bert_sdpa), with the libraries
 * scripts/setup-corpus.js installs; `skips` holds the ids that failed to export and why. */
export async function ensureCorpusPrograms(
  ids: readonly string[], opts: EnsureOptions = {},
): Promise<{ fixtures: ProgramFixture[]; skips: { id: string; reason: string }[] }> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { ensureCorpusPython } = require('./corpus') as typeof import('./corpus');
  const py = ensureCorpusPython(opts.log);
  const scriptHash = pythonScriptHash('corpus.py');
  const key = programKey(py.torchVersion, `corpus\0${scriptHash}\0${JSON.stringify(py.versions)}\0${[...ids].sort().join(',')}`);
  const dir = path.join(modelsDir(), key);
  const info = { version: py.torchVersion, python: { exe: py.exe, pythonPath: [py.torchPath, py.libPath].join(path.delimiter) } };
  await ensureExported(key, path.join(dir, 'index.json'), `${ids.length} corpus programs`, opts,
    () => runExporter(info, ['--out', dir, '--corpus', ...ids], `${ids.length} corpus programs`, opts.log, 'export_programs.py'));
  const index = JSON.parse(fs.readFileSync(path.join(dir, 'index.json'), 'utf8')) as {
    models: { id: string; dir: string }[];
    skips: { id: string; reason: string }[];
  };
  const fixtures = index.models.map((m) => {
    const fx = toFixture(path.join(dir, m.dir, 'manifest.json'), key, true);
    return { ...fx, program: path.join(fx.dir, 'program.pt2') };
  });
  return { fixtures, skips: index.skips };
}
