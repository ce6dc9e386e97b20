// The real-model corpus: model classes of the model libraries (Hugging Face transformers; timm and
// torchvision where they import beside this torch), built by scripts/corpus.py from small configs
// with random weights and exported to TorchScript in the fixture format of lib/app/models.ts.
//
// loadCorpus() installs the pinned libraries once (scripts/setup-corpus.js, into
// .torchgraph/corpus-python/: the main job never needs them), then exports the corpus unless it is
// cached in <models dir>/<key16>/, where key16 hashes the exporters (corpus.py, export_models.py,
// vit.py), the torch version and the pinned library versions. The export runs under the same
// lock as the built-in fixtures, and index.json is written last, so a folder with an index is
// complete. loadCorpus({ set: 'bench' }) loads the bench set instead (standard-size models for
// bench --corpus --set bench, traced only), exported only when asked, under its own key.
// No native code is loaded here.
import * as fs from 'fs';
import * as path from 'path';
import {
  contentKey, ensureExported, modelsDir, runExporter, toFixture, type EnsureOptions, type ModelFixture, type VariantName,
} from './models';
import { corpusSetupScript, pythonScriptHash, type CorpusPython } from '../torchscript/package-scripts';

export type CorpusCategory = 'text-encoder' | 'decoder' | 'encoder-decoder' | 'vision-transformer' | 'vision-conv';

/** One corpus model: a fixture (traced, and scripted where the class scripts) plus where it came from. */
export interface CorpusFixture extends ModelFixture {
  kind: 'model';
  /** e.g. "bert", "llama", "swin". */
  family: string;
  category: CorpusCategory;
  /** "transformers", "timm" or "torchvision". */
  library: string;
  libraryVersion: string;
  /** e.g. "transformers.BertModel". */
  className: string;
  /** "eager" or "sdpa"; null for classes without attention or without the option. */
  attnImplementation: 'eager' | 'sdpa' | null;
  /** "small" (the corpus' small configs) or "standard" (a published model's size). */
  size: 'small' | 'standard';
}

/** A model (or a whole library) left out, and why. */
export interface CorpusSkip {
  /** unavailable: the library does not import here, or the class lacks the option; failed: the
   * model could not be built or run eagerly (a bug, not a fact about the machine). */
  kind: 'unavailable' | 'failed';
  library: string;
  /** The model id, or the ids a library would have given. */
  id?: string;
  ids?: string[];
  className?: string;
  reason: string;
}

export interface Corpus {
  dir: string;
  key: string;
  cacheHit: boolean;
  /** PYTHONPATH for Python that rebuilds these models (the torch, then the model libraries). */
  pythonPath: string;
  /** torch and each model library that imported, with its version. */
  versions: Record<string, string>;
  /** The variants the corpus exports (traced, scripted). */
  variants: VariantName[];
  fixtures: CorpusFixture[];
  byId: Record<string, CorpusFixture>;
  families: string[];
  skips: CorpusSkip[];
  /** Seconds the export took (as recorded when it ran), and the library install of this call (0: none). */
  exportSeconds: number;
  installSeconds: number;
}

export interface CorpusOptions extends EnsureOptions {
  /** Leave out the standard-size models (bert-base, GPT-2 small, ViT-B/16): a different cache key. */
  small?: boolean;
  /** 'bench': the bench set instead (corpus.py's BENCH: BERT-base at L=128 and 512, GPT-2 small at
   * L=512, eager attention; ResNet-18 and ResNet-50; traced only), exported only when asked for,
   * under its own cache key. `small` does not apply to it. */
  set?: 'default' | 'bench';
}

interface IndexJson {
  versions: Record<string, string>;
  variants: VariantName[];
  exportSeconds: number;
  families: string[];
  models: { id: string; dir: string }[];
  skips: { kind: CorpusSkip['kind']; library: string; id?: string; ids?: string[]; class?: string; reason: string }[];
}

/** Install the pinned model libraries (once; a stamp says they are there). */
export function ensureCorpusPython(log?: (line: string) => void): CorpusPython {
  return corpusSetupScript().ensureCorpusPython(log ? { log } : {});
}

/** Install the libraries if needed, export the corpus if it is not cached, and return it. */
export async function loadCorpus(opts: CorpusOptions = {}): Promise<Corpus> {
  const py = ensureCorpusPython(opts.log ? (m) => opts.log!(`torchgraph: ${m}`) : undefined);
  const scriptHash = pythonScriptHash('corpus.py');
  const bench = opts.set === 'bench';
  const set = bench ? 'bench' : opts.small ? 'small' : 'all';
  const what = `corpus\0${scriptHash}\0${JSON.stringify(py.versions)}\0${JSON.stringify(py.torchvisionEmptied ?? [])}\0${set}`;
  const key = contentKey(py.torchVersion, what);
  const dir = path.join(modelsDir(), key);
  const indexPath = path.join(dir, 'index.json');
  // The torch path first: the corpus folder holds no torch, and must not shadow this one.
  const pythonPath = [py.torchPath, py.libPath].join(path.delimiter);
  const info = { version: py.torchVersion, python: { exe: py.exe, pythonPath } };
  const args = ['--out', dir, '--vision-path', py.visionPath, ...(bench ? ['--bench'] : opts.small ? ['--no-standard'] : [])];
  const label = bench ? 'the corpus bench set' : 'the model corpus';
  const cacheHit = await ensureExported(key, indexPath, label, opts, () => runExporter(info, args, label, opts.log, 'corpus.py'));
  const index = JSON.parse(fs.readFileSync(indexPath, 'utf8')) as IndexJson;
  const fixtures = index.models.map((m) => corpusFixture(toFixture(path.join(dir, m.dir, 'manifest.json'), key, cacheHit)));
  const byId: Record<string, CorpusFixture> = {};
  for (const f of fixtures) byId[f.name] = f;
  return {
    dir, key, cacheHit, pythonPath, versions: index.versions, variants: index.variants, fixtures, byId, families: index.families,
    skips: index.skips.map(({ class: className, ...s }) => ({ ...s, ...(className ? { className } : {}) })),
    exportSeconds: index.exportSeconds, installSeconds: py.installed ? py.seconds : 0,
  };
}

function corpusFixture(fx: ModelFixture): CorpusFixture {
  const raw = fx.raw as Record<string, unknown>;
  return {
    ...fx,
    kind: 'model',
    family: raw.family as string,
    category: raw.category as CorpusCategory,
    library: raw.library as string,
    libraryVersion: raw.libraryVersion as string,
    className: raw.class as string,
    attnImplementation: (raw.attnImplementation ?? null) as CorpusFixture['attnImplementation'],
    size: (raw.size ?? 'small') as CorpusFixture['size'],
  };
}
