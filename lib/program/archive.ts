// A .pt2 archive as torch.export.save writes it, read with libtorch's own zip reader
// (native/program.cc), checked for what this reader supports: an ExportedProgram of schema
// version 8 with its weights and constants, not an AOTInductor package or a newer format.
import * as fs from 'fs';
import { binding } from '../torchscript/binding';
import { native, TorchGraphError } from '../core/errors';
import { SCHEMA_MAJOR, type ModelJson, type WeightsConfig } from './format';

export interface ProgramArchive {
  path: string;
  /** The model's name inside the archive ("model" for torch.export.save). */
  model: string;
  program: ModelJson;
  weights: WeightsConfig;
  constants: WeightsConfig;
  records: Set<string>;
  /** extra/torchgraph.json: what a program saved by an optimized model records (OptimizedModel.save). */
  torchgraphMetadata?: string;
}

function unsupported(path: string, what: string, fix: string): TorchGraphError {
  return new TorchGraphError('ERR_LOAD', `cannot load '${path}': ${what}. ${fix}`);
}

function parseJson<T>(path: string, record: string, text: string | undefined): T {
  if (text === undefined) throw unsupported(path, `the archive has no ${record}`, 'Save the program with torch.export.save(ep, path).');
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw unsupported(path, `${record} is not valid JSON (${(e as Error).message})`, 'The archive is damaged: save the program again.');
  }
}

/** A regular file, or ERR_LOAD saying what it is: libtorch's reader would block on a FIFO. */
function checkRegularFile(path: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'ELOOP' ? 'a symlink loop' : `cannot read it (${code})`;
    throw new TorchGraphError('ERR_LOAD', `cannot load '${path}': ${why}`);
  }
  if (!st.isFile()) throw new TorchGraphError('ERR_LOAD', `cannot load '${path}': not a regular file`);
}

/** Read and check a .pt2 archive; rejects with ERR_LOAD saying what it is and what to do. */
export async function readProgramArchive(path: string): Promise<ProgramArchive> {
  checkRegularFile(path);
  const { records, texts } = await native(() => binding().readArchive(path));
  const all = new Set(records);
  if (records.some((r) => r.startsWith('data/aotinductor/'))) {
    throw unsupported(path, 'this is an AOTInductor package (compiled code, no graph to read)',
      'torchgraph reads programs saved with torch.export.save(torch.export.export(model, args), path); ' +
      'run this package with torch._inductor.aoti_load_package.');
  }
  const format = texts.archive_format?.trim();
  if (format !== undefined && format !== 'pt2') {
    throw unsupported(path, `archive_format is '${format}', not 'pt2'`, 'Save the program with torch.export.save.');
  }
  const models = records.filter((r) => /^models\/[^/]+\.json$/.test(r));
  if (models.length === 0) {
    const hint = all.has('data.pkl') || all.has('constants.pkl')
      ? ' (a torch.save() checkpoint or a TorchScript file, not a .pt2 program)'
      : '';
    throw unsupported(path, `the archive holds no models/<name>.json${hint}`,
      'Export with torch.export.export and save with torch.export.save; TorchScript files load as TorchScript.');
  }
  const model = models.includes('models/model.json') ? 'model' : models[0].slice('models/'.length, -'.json'.length);
  const program = parseJson<ModelJson>(path, `models/${model}.json`, texts[`models/${model}.json`]);
  const major = program.schema_version?.major;
  if (major !== SCHEMA_MAJOR) {
    throw unsupported(path,
      `the program's schema version is ${major}.${program.schema_version?.minor} (torch ${program.torch_version ?? '?'}); ` +
      `this reader knows version ${SCHEMA_MAJOR}`,
      'Save the program with torch 2.13 (or a torch whose torch/_export/serde/schema.py SCHEMA_VERSION major is 8).');
  }
  const weightsRecord = `data/weights/${model}_weights_config.json`;
  const constantsRecord = `data/constants/${model}_constants_config.json`;
  const weights = all.has(weightsRecord) ? parseJson<WeightsConfig>(path, weightsRecord, texts[weightsRecord]) : { config: {} };
  const constants = all.has(constantsRecord) ? parseJson<WeightsConfig>(path, constantsRecord, texts[constantsRecord]) : { config: {} };
  const metadata = texts['extra/torchgraph.json'];
  return { path, model, program, weights, constants, records: all, ...(metadata !== undefined ? { torchgraphMetadata: metadata } : {}) };
}

/** Whether a file looks like a .pt2 program: by name, or by a models/*.json record. */
export function isProgramPath(path: string): boolean {
  return /\.pt2$/i.test(path);
}
