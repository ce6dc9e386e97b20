// MODEL arguments (a built-in name or a TorchScript file) and the inputs a run uses.
import { loadModel } from '../../program/load-model';
import { isProgramPath, programInputs } from '../../program';
import * as fs from 'fs';
import * as path from 'path';
import { MODEL_NAMES, type ModelFixture, type ModelName, type VariantName } from '../models';
import type { ReportInput } from '../../report/types';
import type { Tensor } from '../../torchscript/tensor';
import type { LoadOptions, Module } from '../../torchscript/module';
import { CliError, EXIT_INTERNAL, UsageError } from './errors';
import { describeSpec, inputSeed, parseInputSpec, readSpecFile, type InputSpec } from './input-spec';

/** Built-in models the CLI offers (fixtures exported by scripts/export_models.py). */
export const BUILTIN_MODELS: readonly ModelName[] = MODEL_NAMES;

export type ModelRef = { kind: 'builtin'; name: ModelName; display: string } | { kind: 'file'; path: string; display: string };

/** A built-in name (unless a file of that name exists here) or an existing file. */
export function resolveModelArg(arg: string): ModelRef {
  if (arg.trim() === '') {
    throw new UsageError('empty MODEL: give a TorchScript file or a built-in name (' + BUILTIN_MODELS.join(', ') + ')');
  }
  if ((BUILTIN_MODELS as readonly string[]).includes(arg) && !fs.existsSync(arg)) {
    return { kind: 'builtin', name: arg as ModelName, display: arg };
  }
  if (!fs.existsSync(arg)) {
    if (isSymlink(arg)) throw new UsageError(`model ${arg} is a symlink loop or a symlink to nothing`);
    throw new UsageError(`model file not found: ${arg} (built-in models: ${BUILTIN_MODELS.join(', ')})`);
  }
  if (fs.statSync(arg).isDirectory()) throw new UsageError(`model ${arg} is a folder, not a TorchScript file`);
  return { kind: 'file', path: path.resolve(arg), display: arg };
}

function isSymlink(p: string): boolean {
  try {
    return fs.lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

/** Export (once; cached after) or find a built-in model's fixture. */
export async function builtinFixture(name: ModelName, opts: { verbose?: boolean; stderr: (s: string) => void }): Promise<ModelFixture> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { ensureModel } = require('../models') as typeof import('../models');
  let announced = false;
  try {
    return await ensureModel(name, {
      runVariantOnly: true,
      log: (line) => {
        if (!announced) {
          opts.stderr(`torchgraph: exporting built-in model ${name} with Python torch (first use; cached afterwards)...\n`);
          announced = true;
        }
        if (opts.verbose) opts.stderr(`  ${line}\n`);
      },
    });
  } catch (e) {
    throw new CliError(`cannot prepare built-in model ${name}: ${(e as Error).message.replace(/^torchgraph:\s*/, '')}`, EXIT_INTERNAL, { cause: e });
  }
}

/** The TorchScript file a built-in model runs from: the variant its manifest names as runVariant
 * (a scripted model whose forward keeps optional arguments, which a trace would drop), else the
 * traced variant. */
export function builtinFile(fx: ModelFixture): string {
  const variant = (typeof fx.raw.runVariant === 'string' ? fx.raw.runVariant : 'traced') as VariantName;
  const p = fx.variants[variant];
  if (!p) {
    throw new CliError(`built-in model ${fx.name} has no ${variant} variant: ${fx.errors[variant] ?? 'no error recorded'}`, EXIT_INTERNAL);
  }
  return p;
}

export interface PreparedInputs {
  tensors: Tensor[];
  info: ReportInput[];
}

/** Parse every --input first, so a bad one is reported before anything slow happens. */
export function parseSpecs(texts: readonly string[]): InputSpec[] {
  return texts.map(parseInputSpec);
}

/** Make the tensors: random specs from the seed (input i from seed + i), .npy files as read. */
export function makeInputs(specs: readonly InputSpec[], seed: number, names: readonly string[] = []): PreparedInputs {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Tensor } = require('../../torchscript/tensor') as typeof import('../../torchscript/tensor');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { randomTensor } = require('../../torchscript/random') as typeof import('../../torchscript/random');
  const tensors: Tensor[] = [];
  const info: ReportInput[] = [];
  specs.forEach((s, i) => {
    const name = names[i] ?? `input${i}`;
    if (s.kind === 'random') {
      tensors.push(randomTensor(s.shape, s.dtype, inputSeed(seed, i), s.fill));
      info.push({ name, shape: s.shape, dtype: s.dtype, source: describeSpec(s, seed, i) });
    } else {
      const a = readSpecFile(s);
      tensors.push(Tensor.from(a.data, a.shape, a.dtype));
      info.push({ name, shape: a.shape, dtype: a.dtype, source: describeSpec(s, seed, i) });
    }
  });
  return { tensors, info };
}

/** A built-in model's own example inputs (the .npy files its export wrote). */
export function exampleInputs(fx: ModelFixture): PreparedInputs {
  const specs: InputSpec[] = fx.inputs.map((t) => ({ kind: 'npy', text: t.file, path: t.file }));
  const prepared = makeInputs(specs, 0, fx.inputs.map((t) => t.name));
  prepared.info.forEach((i) => { i.source = `example input of ${fx.name}`; });
  return prepared;
}

/** `--input name=SPEC`: the name, when the text starts with an argument name and '='. */
export const NAMED_SPEC = /^([A-Za-z_][A-Za-z0-9_]*)=(.+)$/s;

export interface NamedSpecs { specs: InputSpec[]; names: string[] | null }

/** A model file loaded at most once: reading its forward() names and running it share one load. */
export class ModelOnce {
  private loading: Promise<Module> | undefined;
  /** How long the load took, in milliseconds (0 until it finished). */
  loadMs = 0;

  constructor(readonly file: string, private readonly options: LoadOptions = {}, private readonly onLoad?: () => void) {}

  get(): Promise<Module> {
    if (!this.loading) {
      this.onLoad?.();
      const t0 = performance.now();
      this.loading = loadModel(this.file, this.options).then((m) => {
        this.loadMs = performance.now() - t0;
        return m;
      });
    }
    return this.loading;
  }

  /** Whether the file was loaded (or is loading). */
  get started(): boolean {
    return this.loading !== undefined;
  }

  /** forward()'s argument names after self, from the file's schema. */
  async argumentNames(): Promise<string[]> {
    return (await this.get()).inputs().map((a) => a.name);
  }

  /** The module if it was loaded, for the run to take over (and free); undefined otherwise. */
  take(): Promise<Module> | undefined {
    const m = this.loading;
    this.loading = undefined;
    return m;
  }

  /** Free the module if it was loaded and not taken over. */
  async dispose(): Promise<void> {
    const m = this.take();
    if (m) (await m.catch(() => undefined))?.dispose();
  }
}

/** Parse every --input; named ones (all or none) are put in the order of forward's arguments,
 * read from the model file's schema. Arguments after the last one given take their defaults; one
 * left out before a given one cannot be (the runs take inputs in order). `model`: the file, or
 * the file loaded once for the run as well. */
export async function orderedSpecs(texts: readonly string[], model: string | ModelOnce | null): Promise<NamedSpecs> {
  const split = texts.map((t) => NAMED_SPEC.exec(t.trim()));
  if (split.every((m) => !m)) return { specs: parseSpecs(texts), names: null };
  if (split.some((m) => !m)) throw new UsageError('--input: give every input by name (name=SPEC) or none');
  const given = split.map((m) => ({ name: m![1], text: m![0], spec: parseInputSpec(m![2]) }));
  const twice = given.find((g, i) => given.findIndex((h) => h.name === g.name) !== i);
  if (twice) throw new UsageError(`--input ${twice.name}=...: given twice`);
  if (!model) return { specs: given.map((g) => g.spec), names: given.map((g) => g.name) };
  const once = typeof model === 'string' ? new ModelOnce(model) : model;
  let names: string[];
  try {
    names = await once.argumentNames();
  } finally {
    if (typeof model === 'string') await once.dispose();
  }
  const pos = given.map((g) => {
    const i = names.indexOf(g.name);
    if (i < 0) throw new UsageError(`--input ${g.text}: forward has no argument '${g.name}' (${names.join(', ')})`);
    return i;
  });
  const last = Math.max(...pos);
  const gap = names.slice(0, last + 1).find((n, i) => !pos.includes(i));
  if (gap) {
    throw new UsageError(`--input: '${gap}' comes before '${names[last]}' in forward(${names.join(', ')}) and is not given: `
      + 'give it too (inputs after the last one given take their defaults)');
  }
  const order = [...given.keys()].sort((a, b) => pos[a] - pos[b]);
  return { specs: order.map((i) => given[i].spec), names: order.map((i) => given[i].name) };
}

/** The names of a model file's first `count` forward() arguments (its schema: a traced file's
 * carry forward's parameter names, e.g. input_ids, attention_mask), for inputs given by position;
 * undefined when it names fewer. A file that does not load throws what is wrong with it. */
export async function positionalNames(model: ModelOnce, count: number): Promise<string[] | undefined> {
  const names = await model.argumentNames();
  return names.length >= count ? names.slice(0, count) : undefined;
}

/**
 * The file MODEL runs from and the inputs of the run: a built-in model's own example inputs (or
 * the --input specs, named ones ordered by its file's signature), a file's --input specs.
 */
export async function modelFileAndInputs(
  ref: ModelRef, inputTexts: readonly string[], parsed: NamedSpecs, seed: number, fileNames: readonly string[] | undefined,
  opts: { verbose: boolean; quiet: boolean; step: (s: string) => void; done: () => void; stderr: (s: string) => void },
): Promise<{ file: string; inputs: PreparedInputs }> {
  if (ref.kind === 'file') return { file: ref.path, inputs: makeInputs(parsed.specs, seed, parsed.names ?? fileNames ?? []) };
  opts.step(`preparing built-in model ${ref.name}`);
  const fx = await builtinFixture(ref.name, { verbose: opts.verbose, stderr: (s) => { opts.done(); if (!opts.quiet) opts.stderr(s); } });
  const file = builtinFile(fx);
  const ordered = parsed.names ? await orderedSpecs(inputTexts, file) : parsed;
  const inputs = parsed.specs.length ? makeInputs(ordered.specs, seed, ordered.names ?? fx.inputs.map((t) => t.name)) : exampleInputs(fx);
  return { file, inputs };
}

/** A .pt2 file's input names, and --input texts for its example shapes when every input is a
 * float tensor of fixed shape (token ids and masks need real values: those take --input, and
 * `needValues` names them). Undefined for other files. */
export async function programSignature(
  file: string, wantDefaults: boolean,
): Promise<{ names: string[]; defaults?: string[]; needValues: string[] } | undefined> {
  if (!isProgramPath(file)) return undefined;
  let inputs;
  try {
    inputs = await programInputs(file);
  } catch (e) {
    if ((e as { code?: string }).code === 'ERR_LOAD') throw e; // what is wrong with the file, exit 2
    return undefined;
  }
  const describe = (i: (typeof inputs)[number]) => `${i.name} (${i.shape.map((d) => d ?? '?').join('x')}${i.dtype ? ' ' + i.dtype : ''})`;
  const needsValue = (i: (typeof inputs)[number]) => i.shape.some((d) => d === null) || !(i.dtype === 'float32' || i.dtype === 'float64');
  const needValues = inputs.filter(needsValue).map(describe);
  const defaults = wantDefaults && !needValues.length && inputs.length ? inputs.map((i) => `${i.shape.join('x')}:${i.dtype}`) : undefined;
  return { names: inputs.map((i) => i.name), defaults, needValues };
}

/** For a usage error: which of a program's inputs kept it from defaulting to its example's shapes. */
export function withoutDefaults(program: { needValues: string[] } | undefined): string {
  return program?.needValues.length
    ? `; the program's example shapes cannot stand in for ${program.needValues.join(', ')}: `
      + 'symbolic sizes and integer or bool inputs need a SPEC'
    : '';
}
