// A method's arguments from its TorchScript schema, and the one rule every caller follows to go
// from "the inputs given" to "every argument the graph takes": the inputs fill the arguments in
// order, arguments after them take their defaults (None stays None), and an argument with no
// default that is not given is an error naming it. Used by Module.run, shape propagation and
// the graph runs (original, unfused, fused), so they all see the same argument list.
// Pure TypeScript: no native code is loaded here.
import type { NativeArgument, NativeValue } from './binding';
import { TorchGraphError } from '../core/errors';

/** A default value as plain data: None is null, ints are BigInt, floats numbers, lists arrays. */
export type DefaultValue = null | boolean | bigint | number | string | DefaultValue[];

/** One argument of a method (self left out). */
export interface ArgumentInfo {
  name: string;
  /** TorchScript annotation: "Tensor", "Optional[Tensor]", "Optional[bool]", "List[int]", ... */
  type: string;
  /** Keyword-only in the schema (after `*`). */
  kwargOnly: boolean;
  hasDefault: boolean;
  /** The default when it is plain data (present exactly when hasDefault and representable). */
  default?: DefaultValue;
  /** How torch prints a default that is not plain data (a tensor, a device, ...). */
  defaultRepr?: string;
}

/** The schema's arguments without `self` (methods take the module first). */
export function argumentsFromSchema(args: readonly NativeArgument[]): ArgumentInfo[] {
  const rest = args.length && (args[0].name === 'self' || args[0].type.startsWith('__torch__.')) ? args.slice(1) : args;
  return rest.map((a) => {
    const info: ArgumentInfo = { name: a.name, type: a.type, kwargOnly: a.kwargOnly, hasDefault: a.hasDefault };
    if ('default' in a) info.default = a.default as DefaultValue;
    if (a.defaultRepr !== undefined) info.defaultRepr = a.defaultRepr;
    return info;
  });
}

const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;

function describe(args: readonly ArgumentInfo[]): string {
  const withDefault = (a: ArgumentInfo) => `${a.name}=${a.defaultRepr ?? formatDefault(a.default as DefaultValue, a.type)}`;
  return args.map((a) => (a.hasDefault ? withDefault(a) : a.name)).join(', ');
}

/** A default as Python writes it: None, True, 0.5, (-1,), [1, 2]. */
export function formatDefault(v: DefaultValue, type = ''): string {
  if (v === null) return 'None';
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) {
    const items = v.map((x) => formatDefault(x));
    return /^(Optional\[)?Tuple\[/.test(type) ? `(${items.join(', ')}${items.length === 1 ? ',' : ''})` : `[${items.join(', ')}]`;
  }
  if (typeof v === 'number' && Number.isInteger(v)) return v.toFixed(1); // floats (ints are BigInt)
  return String(v);
}

/**
 * The arguments after the `given` first ones, which take their defaults. Throws ERR_INVALID_ARG
 * when more inputs are given than the method takes, when a missing argument has no default
 * (naming it), or when its default is not plain data.
 */
export function missingArguments(signature: readonly ArgumentInfo[], given: number, method = 'forward'): ArgumentInfo[] {
  if (given > signature.length) {
    throw new TorchGraphError('ERR_INVALID_ARG',
      `${method}(${describe(signature)}) takes ${plural(signature.length, 'input')}, ${given} given`);
  }
  const missing = signature.slice(given);
  const required = missing.filter((a) => !a.hasDefault);
  if (required.length) {
    throw new TorchGraphError('ERR_INVALID_ARG',
      `${method}(${describe(signature)}): missing ${required.length === 1 ? 'argument' : 'arguments'} ` +
      `${required.map((a) => `'${a.name}' (${a.type})`).join(', ')} without a default; ${plural(given, 'input')} given`);
  }
  const opaque = missing.find((a) => !('default' in a));
  if (opaque) {
    throw new TorchGraphError('ERR_INVALID_ARG',
      `${method}: argument '${opaque.name}' was not given and its default ${opaque.defaultRepr ?? ''} cannot be passed from JS: give it`);
  }
  return missing;
}

/** The element type of a list annotation ("List[int]" -> "int"), or undefined. */
function listElement(type: string): string | undefined {
  const m = /^(?:Optional\[)?List\[(\w+)\]\]?$/.exec(type) ?? /^(\w+)\[\]\??$/.exec(type);
  return m?.[1];
}

/** A default as the addon takes it: lists become typed lists ({list, elem}), so that an int[]
 * argument receives List[int] (an array alone would cross as a tuple). */
export function defaultToNative(arg: ArgumentInfo): NativeValue {
  const v = arg.default as DefaultValue;
  if (!Array.isArray(v)) return v;
  const elem = listElement(arg.type);
  if (elem === undefined) return v.map((x) => defaultToNative({ ...arg, type: '', default: x }));
  const native = elem === 'float' ? v.map((x) => Number(x)) : (v as NativeValue[]);
  return { list: native, elem: elem === 'Tensor' ? 'Tensor' : elem } as NativeValue;
}

/**
 * Every argument's value: the given ones, then the defaults of the rest. `given` are already
 * in the caller's native form (tensors, ...).
 */
export function resolveArguments(signature: readonly ArgumentInfo[], given: readonly NativeValue[], method = 'forward'): NativeValue[] {
  return [...given, ...missingArguments(signature, given.length, method).map(defaultToNative)];
}

/**
 * Every argument's value from inputs given by name (`forward({ src, is_causal: true })`): the
 * named ones, in signature order, and the defaults of the others, wherever they are. Throws
 * ERR_INVALID_ARG for a name the method does not take, or an argument without a default that
 * is not named.
 */
export function resolveNamedArguments(
  signature: readonly ArgumentInfo[], named: Readonly<Record<string, NativeValue>>, method = 'forward',
): NativeValue[] {
  const known = new Set(signature.map((a) => a.name));
  const unknown = Object.keys(named).filter((k) => !known.has(k));
  if (unknown.length) {
    const noun = unknown.length === 1 ? 'argument' : 'arguments';
    const names = unknown.map((k) => `'${k}'`).join(', ');
    throw new TorchGraphError('ERR_INVALID_ARG', `${method}(${describe(signature)}) has no ${noun} ${names}`);
  }
  return signature.map((a) => {
    if (Object.prototype.hasOwnProperty.call(named, a.name)) return named[a.name];
    if (!a.hasDefault) {
      throw new TorchGraphError('ERR_INVALID_ARG',
        `${method}(${describe(signature)}): argument '${a.name}' (${a.type}) has no default and is not given`);
    }
    return missingArguments([a], 0, method).map(defaultToNative)[0];
  });
}
