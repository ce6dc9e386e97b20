// `--input SPEC`: a shape with an optional dtype and fill (1x3x224x224, 2x7x64:float64, 3x9:bool,
// 4x16:int64, 2x128:int64:ones, 2x128:int64:0..30522), filled from a seeded generator, or a
// path to a .npy file.
import * as path from 'path';
import { TorchGraphError } from '../../core/errors';
import { NpyError, readNpy } from '../../torchscript/npy';
import { numel } from '../../core/ops/classes';
import type { Fill } from '../../torchscript/random';

export const SPEC_DTYPES = ['float32', 'float64', 'int64', 'int32', 'uint8', 'bool'] as const;
export type SpecDtype = (typeof SPEC_DTYPES)[number];

const DTYPE_ALIASES: Record<string, SpecDtype> = {
  float: 'float32', f32: 'float32', double: 'float64', f64: 'float64', long: 'int64', i64: 'int64',
  int: 'int32', i32: 'int32', u8: 'uint8',
};

/** Most elements one generated input may have (4 GiB of float32). */
export const MAX_SPEC_ELEMENTS = 2 ** 30;

export type InputSpec =
  | { kind: 'random'; text: string; shape: number[]; dtype: SpecDtype; fill?: Fill }
  | { kind: 'npy'; text: string; path: string };

/** A bad --input (exit code 2). */
export class InputSpecError extends TorchGraphError {
  constructor(message: string) {
    super('ERR_INVALID_ARG', message);
    this.name = 'InputSpecError';
  }
}

const EXAMPLE = 'expected a shape like 1x3x224x224, optionally with a dtype (2x7x64:float64) and a fill '
  + '(2x128:int64:ones, 2x128:int64:0..1000), or a path to a .npy file';

const FILLS = 'ones, zeros or LOW..HIGH';
const RANGE = /^(-?\d+(?:\.\d+)?)\.\.(-?\d+(?:\.\d+)?)$/;

/** Integer dtypes' ranges: LOW..HIGH must lie within [min, max + 1]. */
const INT_LIMITS: Partial<Record<SpecDtype, [number, number]>> = {
  int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER], int32: [-(2 ** 31), 2 ** 31], uint8: [0, 256],
};

function looksLikeFill(t: string): boolean {
  return t === 'ones' || t === 'zeros' || t.includes('..');
}

/** A fill for `dtype`; `bad` makes the error. */
function parseFill(t: string, dtype: SpecDtype, bad: (why: string) => InputSpecError): Fill {
  if (t === 'ones' || t === 'zeros') return { kind: t };
  const m = RANGE.exec(t);
  if (!m) throw bad(`unknown fill ${JSON.stringify(t)} (${FILLS}, e.g. 0..1000)`);
  if (dtype === 'bool') throw bad('a bool input takes ones or zeros, not a range');
  const [low, high] = [Number(m[1]), Number(m[2])];
  const limits = INT_LIMITS[dtype];
  if (limits) {
    if (!Number.isInteger(low) || !Number.isInteger(high)) throw bad(`range ${t}: ${dtype} takes integer bounds`);
    if (low < limits[0] || high > limits[1]) throw bad(`range ${t} does not fit ${dtype}`);
  }
  if (!(high > low)) throw bad(`range ${t} is empty: LOW..HIGH draws from [LOW, HIGH), so HIGH must be more than LOW`);
  return { kind: 'range', low, high };
}

function looksLikePath(s: string): boolean {
  return /\.npy$/i.test(s) || s.includes('/') || s.includes(path.sep) || s.startsWith('.') || s.startsWith('~');
}

/** Parse one SPEC; throws InputSpecError with what is wrong and where. Reads no file. */
export function parseInputSpec(text: string): InputSpec {
  const bad = (why: string) => new InputSpecError(`bad input spec ${JSON.stringify(text)}: ${why}`);
  const s = text.trim();
  if (s === '') throw bad(`empty; ${EXAMPLE}`);
  if (looksLikePath(s)) {
    if (!/\.npy$/i.test(s)) throw bad('a path must name a .npy file (NumPy array); other formats are not read');
    return { kind: 'npy', text, path: s };
  }
  // SHAPE[:DTYPE][:FILL], or SHAPE:FILL (float32).
  const [dimsText, ...rest] = s.split(':');
  if (rest.length > 2) throw bad("more than two ':' (SHAPE:DTYPE:FILL)");
  let dtype: SpecDtype = 'float32';
  let fillText: string | undefined;
  const tail = rest.map((t) => t.trim().toLowerCase());
  if (tail.length === 1 && looksLikeFill(tail[0])) fillText = tail[0];
  else if (tail.length) {
    const d = tail[0];
    if (d === '') throw bad(`missing dtype after ':' (one of ${SPEC_DTYPES.join(', ')})`);
    if (looksLikeFill(d)) throw bad(`the dtype comes before the fill: SHAPE:DTYPE:FILL (e.g. 2x128:int64:${d})`);
    // Own keys only: 'constructor' or '__proto__' is no alias.
    const alias = Object.hasOwn(DTYPE_ALIASES, d) ? DTYPE_ALIASES[d] : undefined;
    const resolved = (SPEC_DTYPES as readonly string[]).includes(d) ? (d as SpecDtype) : alias;
    if (!resolved) throw bad(`unknown dtype ${JSON.stringify(d)} (one of ${SPEC_DTYPES.join(', ')})`);
    dtype = resolved;
    if (tail.length === 2) {
      if (tail[1] === '') throw bad(`missing fill after '${dtype}:' (${FILLS})`);
      fillText = tail[1];
    }
  }
  const fill = fillText === undefined ? undefined : parseFill(fillText, dtype, bad);
  if (/^[\d\s]*[,*][\d\s,*]*$/.test(dimsText)) throw bad("separate dimensions with 'x', e.g. 1x3x224x224");
  if (!/^[0-9xX\s.+-]+$/.test(dimsText) || !/\d/.test(dimsText)) throw bad(EXAMPLE);
  const parts = dimsText.split(/[xX]/);
  const shape = parts.map((p, i) => {
    const t = p.trim();
    if (t === '') throw bad(`dimension ${i + 1} is empty`);
    if (!/^\d+$/.test(t)) throw bad(`dimension ${i + 1} is ${JSON.stringify(t)}: dimensions must be positive integers`);
    const n = Number(t);
    if (n === 0) throw bad(`dimension ${i + 1} is 0: dimensions must be positive integers`);
    if (!Number.isSafeInteger(n)) throw bad(`dimension ${i + 1} is too large`);
    return n;
  });
  const count = shape.reduce((a, b) => a * b, 1);
  if (count > MAX_SPEC_ELEMENTS) {
    throw bad(`${count.toLocaleString('en-US')} elements is more than the ${MAX_SPEC_ELEMENTS.toLocaleString('en-US')} allowed`);
  }
  return fill ? { kind: 'random', text, shape, dtype, fill } : { kind: 'random', text, shape, dtype };
}

/** A random spec written out in full (SHAPE:DTYPE[:FILL]), as scripts/export_model.py reads it. */
export function canonicalSpec(spec: Extract<InputSpec, { kind: 'random' }>): string {
  const f = spec.fill;
  const fill = !f ? '' : f.kind === 'range' ? `:${f.low}..${f.high}` : `:${f.kind}`;
  return `${spec.shape.join('x')}:${spec.dtype}${fill}`;
}

/** What an input resolved to, without the data. */
export interface InputInfo {
  shape: number[];
  dtype: SpecDtype;
  /** "random normal (seed 3)", "file x.npy" */
  source: string;
}

/** The data of a spec, as plain arrays (no native code): a .npy file's content, or undefined for
 * a random spec (made later by randomTensor with its seed). Throws InputSpecError for missing or
 * unreadable files. */
export function readSpecFile(spec: Extract<InputSpec, { kind: 'npy' }>): ReturnType<typeof readNpy> {
  const p = spec.path.startsWith('~') ? path.join(process.env.HOME ?? '', spec.path.slice(1)) : spec.path;
  try {
    const arr = readNpy(p);
    if (numel(arr.shape) === 0) throw new InputSpecError(`input ${spec.path} is empty (shape (${arr.shape.join(', ')}))`);
    return arr;
  } catch (e) {
    if (e instanceof NpyError) {
      const msg = e.message.startsWith(`${p}: `) ? `${spec.path}: ${e.message.slice(p.length + 2)}` : e.message;
      if (/: not found$/.test(msg)) throw new InputSpecError(`input file not found: ${spec.path}`);
      if (/: is a folder, not a \.npy file$/.test(msg)) throw new InputSpecError(`input ${spec.path} is a folder, not a .npy file`);
      throw new InputSpecError(`cannot read input ${msg}`);
    }
    throw e;
  }
}

/** The seed input `index` is filled from: distinct per input, reproducible per run. */
export function inputSeed(seed: number, index: number): number {
  return (seed + index) >>> 0;
}

export function describeSpec(spec: InputSpec, seed: number, index: number): string {
  if (spec.kind === 'npy') return `file ${spec.path}`;
  const f = spec.fill;
  if (f && f.kind !== 'range') return f.kind;
  if (f) {
    return `random ${spec.dtype.startsWith('float') ? 'uniform' : 'integers'} in [${f.low}, ${f.high}) (seed ${inputSeed(seed, index)})`;
  }
  const how = spec.dtype === 'bool' ? 'random bools' : spec.dtype.startsWith('float') ? 'random normal' : 'random integers 0..9';
  return `${how} (seed ${inputSeed(seed, index)})`;
}
