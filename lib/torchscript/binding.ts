// The one place that knows the raw addon: its types, and how to load it with an error
// that says how to fix a failure (the way sharp does). Nothing here is public API.
import * as path from 'path';
import type { DType, GraphData } from '../core/ir/serialized';
import { TorchGraphError } from '../core/errors';
import { packageRoot } from './package-root';
import { libtorchScript, type ResolvedTorch, type SetupResult } from './package-scripts';

export type TypedArray = Float32Array | Float64Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array | Uint16Array;

export interface NativeTensor {
  readonly shape: number[];
  readonly dtype: DType;
  readonly device: string;
  readonly nbytes: number;
  readonly disposed: boolean;
  toTypedArray(): TypedArray;
  to(device: string): NativeTensor;
  dispose(): void;
}

export interface NativeTensorClass {
  fromTypedArray(data: TypedArray, shape: number[], dtype: DType): NativeTensor;
  empty(shape: number[], dtype: DType, device?: string): NativeTensor;
}

/** Values crossing the boundary: tuples and lists come back as arrays, ints as number (BigInt past 2^53). */
export type NativeValue = NativeTensor | number | bigint | boolean | string | null | NativeValue[]
  | { list: NativeValue[]; elem?: 'int' | 'float' | 'bool' | 'Tensor' } | { [key: string]: NativeValue };

/** Default values as plain data: None -> null, int -> BigInt (always), float -> number, lists -> arrays. */
export type NativeDefault = null | boolean | bigint | number | string | NativeDefault[];

/** One argument of a method's TorchScript schema (signature() lists self first). */
export interface NativeArgument {
  name: string;
  /** annotation_str of the type: "Tensor", "Optional[Tensor]", "Optional[bool]", "List[int]", ... */
  type: string;
  kwargOnly: boolean;
  hasDefault: boolean;
  /** Present when hasDefault and the default is plain data. */
  default?: NativeDefault;
  /** torch's print of a default that is not plain data. */
  defaultRepr?: string;
}

export interface NativeRunResult {
  output: NativeValue;
  /** Peak bytes of live tensor storage above the level before the run; -1 when not measured. */
  peakBytes: number;
  /** Wall time of the run itself, in milliseconds. */
  ms: number;
  /** With `profile` (built graphs): time and calls per top-level operator, by name. */
  opTimes?: Record<string, { ms: number; calls: number }>;
}

export interface RunOptions {
  measureMemory?: boolean;
  /** Time each top-level operator (libtorch's RecordFunction callbacks on the run's thread). */
  profile?: boolean;
}

export interface TensorInfoData { name: string; shape: number[]; dtype: DType; device: string; bytes: number }

export interface ModuleTreeData {
  name: string;
  path: string;
  type: string;
  training: boolean;
  parameters: TensorInfoData[];
  buffers: TensorInfoData[];
  attributes: Record<string, number | bigint | boolean | string | null>;
  children: ModuleTreeData[];
  methods: string[];
}

export interface NativeInferResult {
  /** A description (core/value-info.ts) per element of the tuple the shape-run graph returns. */
  values: unknown[];
  /** Ops that had no meta kernel and ran on zero-filled real tensors, with counts. */
  fallbacks: Record<string, number>;
}

export interface NativeGraph {
  run(inputs: NativeValue[], options?: RunOptions): Promise<NativeRunResult>;
  toString(): string;
  exportGraph(): GraphData;
  dispose(): void;
}

export interface NativeModule {
  readonly device: string;
  readonly disposed: boolean;
  readonly paramBytes: number;
  info(): ModuleTreeData;
  run(method: string, inputs: NativeValue[], options?: RunOptions): Promise<NativeRunResult>;
  exportGraph(method: string, options?: { inline?: boolean; path?: string }): GraphData;
  buildGraph(graph: GraphData): NativeGraph;
  /** The graph of a TorchScript function of the model (a prim::CallFunction target), by qualified name. */
  exportFunction(qualifiedName: string, options?: { inline?: boolean }): GraphData;
  /** The arguments of a method's schema, self first, with their defaults. */
  signature(method: string): NativeArgument[];
  /** torch::jit::Module::save, with `metadata` as the archive's extra file torchgraph.json. */
  save(path: string, metadata: string): Promise<void>;
  /** The root's tensor attribute `name` set to `tensor` (a buffer registered if absent); the old tensor is released once
   * nothing holds it. */
  setAttribute(name: string, tensor: NativeTensor): void;
  /** A token another JS thread (a worker_threads Worker) wraps this module with, once, by adopt(token); both wrappers then hold it. */
  share(): number;
  /** The extra file torchgraph.json of the loaded archive, or null. */
  readonly metadata: string | null;
  /** Runs a graph made by torchscript/shape-run.ts (it returns one tuple) and describes its elements. */
  inferValues(
    graph: GraphData, inputs: NativeValue[], options: { nodeByNode: boolean; metaParameters: boolean },
  ): Promise<NativeInferResult>;
  dispose(): void;
}

/** A default of an operator argument as libtorch holds it (see native/program.cc). */
export type NativeOpDefault =
  | { type: 'none' } | { type: 'bool'; value: boolean } | { type: 'int'; value: bigint } | { type: 'float'; value: number }
  | { type: 'str'; value: string } | { type: 'list'; items: NativeOpDefault[] } | { type: 'other'; repr: string };

/** One tensor of a .pt2 archive: a record (raw storage) and the view of it. */
export interface ArchiveTensorSpec { record: string; dtype: DType; sizes: number[]; strides: number[]; offset: number }

/** A module tree built in memory: modules parents first, methods callees first. */
export interface NativeModuleSpec {
  modules: { path: string; cls: string }[];
  tensors: { module: string; name: string; kind: 'parameter' | 'buffer' | 'constant'; tensor: NativeTensor }[];
  /** `arguments`: forward's names and defaults after self, written into the method's schema (a saved file keeps them). */
  methods: { module: string; name: string; graph: GraphData; arguments?: { name: string; default?: NativeValue }[] }[];
}

export interface Binding {
  Tensor: NativeTensorClass;
  load(path: string, device?: string): Promise<NativeModule>;
  /** A token for another JS thread to adopt this tensor by (NativeModule.share for tensors). */
  shareTensor(tensor: NativeTensor): number;
  /** The module or tensor shared under `token`, wrapped on this thread (each token once). */
  adopt(token: number): NativeModule | NativeTensor;
  /** Record names of a zip archive read by libtorch's PyTorchStreamReader, with the text of the small ones. */
  readArchive(path: string): Promise<{ records: string[]; texts: Record<string, string> }>;
  /** Tensors viewing records of the archive, each record read once. */
  loadTensors(path: string, specs: ArchiveTensorSpec[], device?: string): Promise<NativeTensor[]>;
  /** libtorch's schema of an operator overload ('' for .default), or null. */
  opSchema(name: string, overload: string): { text: string; defaults: (NativeOpDefault | undefined)[] } | null;
  createModule(spec: NativeModuleSpec, device?: string): NativeModule;
  torchVersion: string;
  libtorchHasCuda: boolean;
  /** Whether this libtorch has oneDNN (mkldnn) kernels, and MKL's. */
  hasMkldnn: boolean;
  hasMkl: boolean;
  /** The instruction set ATen's CPU kernels run here (at::get_cpu_capability): 'AVX512', 'AVX2' or 'DEFAULT'. */
  cpuCapability?: string;
  cudaAvailable(): boolean;
  cudaDeviceCount(): number;
  /** libtorch's intra-op threads (at::get_num_threads). */
  numThreads(): number;
  memoryStats(): { cpuLiveBytes: number; cpuPeakBytes: number };
  /** Freed heap memory handed back to the system (malloc_trim). */
  releaseMemory(): void;
}

export type { SetupResult };

/** How the addon is being loaded: which libtorch, and whether this is a development checkout
 * (whose fixes are npm install / build:native) or an installed package (setup / rebuild). */
export interface LoadContext { libtorch: Pick<ResolvedTorch, 'version' | 'libDir' | 'source'> | null; devCheckout: boolean }

function fixFor(ctx: LoadContext): string {
  return ctx.devCheckout
    ? 'Fix: run `npm install` in the torchgraph checkout (resolves libtorch and builds), or `npm run build:native`.'
    : 'Fix: run `npx torchgraph setup` (installs the pinned torch into the cache and checks the addon), or `npm rebuild torchgraph`.';
}

/** The message of a failed addon load: what went wrong, then the fix on its own line. */
export function explainLoadFailure(e: Error, ctx: LoadContext): string {
  const msg = e.message;
  const rec = ctx.libtorch;
  const where = rec ? `libtorch ${rec.version} (${rec.source}) at ${rec.libDir}` : 'no libtorch resolved';
  const lines = [`torchgraph: could not load the native addon: ${msg.split('\n')[0]}`];
  if (/No native build was found/.test(msg)) {
    lines.push(`No prebuilt addon matches ${process.platform}-${process.arch} and none was built from source.`,
      ctx.devCheckout ? fixFor(ctx)
      : 'Fix: run `TORCHGRAPH_BUILD_FROM_SOURCE=1 npx torchgraph setup` (builds it; needs cmake and a C++ compiler), '
        + 'or `npm rebuild torchgraph`.');
  } else if (/lib(torch|c10|torch_cpu|gomp)[^ ]*\.so.*cannot open shared object file/.test(msg)) {
    lines.push(`It loads against ${where}, and that libtorch is no longer there.`, fixFor(ctx));
  } else if (/undefined symbol/.test(msg)) {
    lines.push(`The libtorch found at run time (${where}) is not the one the addon was built against.`,
      ctx.devCheckout ? 'Fix: rebuild against the libtorch you want: `npm run build:native`.'
      : 'Fix: unset TORCHGRAPH_LIBTORCH/TORCHGRAPH_PYTHON to use the pinned torch (`npx torchgraph setup`), '
        + 'or build against yours: `TORCHGRAPH_BUILD_FROM_SOURCE=1 npx torchgraph setup`.');
  } else {
    lines.push(`libtorch: ${where}.`, fixFor(ctx));
  }
  return lines.join('\n');
}

/** The command that finishes an install: what the install script runs. */
export const SETUP_COMMAND = 'npx torchgraph setup';

/** The error when no libtorch is found, in one line: whether setup never ran here (npm skipped
 * the install script: --ignore-scripts, or npm's allowScripts), failed (and why), or ran and its
 * torch is gone; then the one command that fixes it. */
export function notSetUpMessage(devCheckout: boolean, last: SetupResult | null = null, cache?: string): string {
  if (devCheckout) return 'torchgraph: libtorch is not set up in this checkout: run `npm install` (or `node scripts/setup.js`)';
  const where = cache ? ` (${cache})` : '';
  if (last && !last.ok) {
    // The first line, and the next when the first only introduces it ("pip ... failed (exit 1):").
    const lines = (last.error ?? 'no reason recorded').split('\n').map((l) => l.trim()).filter(Boolean);
    const why = (lines[0].endsWith(':') && lines[1] ? `${lines[0]} ${lines[1]}` : lines[0]).replace(/[.:]$/, '');
    return `torchgraph: setup failed: ${why}${/Fix:/.test(why) ? ';' : '. Fix that;'} then run \`${SETUP_COMMAND}\``;
  }
  if (last?.ok) {
    return `torchgraph: setup ran, but no libtorch is found now (the cache${where} was cleaned, or TORCHGRAPH_LIBTORCH `
      + `or TORCHGRAPH_PYTHON changed). Fix: run \`${SETUP_COMMAND}\``;
  }
  return 'torchgraph: setup has not run: npm skipped torchgraph\'s install script (--ignore-scripts or npm\'s allowScripts) '
    + `and no torch is in the cache${where}. Fix: run \`${SETUP_COMMAND}\``;
}

/** Whether an error is "no libtorch set up" (the CLI can then offer to run setup itself). */
export function isNotSetUp(e: unknown): boolean {
  return e instanceof TorchGraphError && (e as { notSetUp?: boolean }).notSetUp === true;
}

let cached: Binding | undefined;

/** Whether setup is done, checked without loading anything: null when a libtorch is found and an
 * addon to load against it is there; else one line saying what is missing and the command that
 * fixes it (the CLI's first use says it before anything else). */
export function setupProblem(): string | null {
  // Loaded already; or an addon named by hand (TORCHGRAPH_ADDON), whose load says what is wrong.
  if (cached || process.env.TORCHGRAPH_ADDON) return null;
  const root = packageRoot();
  const resolver = libtorchScript();
  const devCheckout = resolver.isDevCheckout();
  let found: ResolvedTorch | null;
  try {
    found = resolver.forRuntime();
  } catch (e) {
    return `torchgraph: cannot resolve libtorch: ${(e as Error).message}`;
  }
  if (!found) return notSetUpMessage(devCheckout, resolver.lastSetup(), resolver.cacheDir());
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    (require('node-gyp-build') as { path(dir: string): string }).path(root);
    return null;
  } catch (e) {
    return explainLoadFailure(e as Error, { libtorch: found, devCheckout }).replace(/\n/g, ' ');
  }
}

/** Load the addon once: libtorch from the resolver first (so the addon's libtorch dependencies
 * are met without an RPATH), then TORCHGRAPH_ADDON (a .node path), else node-gyp-build (a
 * local build, then prebuilds/). */
export function binding(): Binding {
  if (cached) return cached;
  const root = packageRoot();
  const resolver = libtorchScript();
  const ctx: LoadContext = { libtorch: null, devCheckout: resolver.isDevCheckout() };
  try {
    ctx.libtorch = resolver.forRuntime();
  } catch (e) {
    throw new TorchGraphError('ERR_ADDON', `torchgraph: cannot resolve libtorch: ${(e as Error).message}`, { cause: e });
  }
  if (!ctx.libtorch) {
    const err = new TorchGraphError('ERR_ADDON', notSetUpMessage(ctx.devCheckout, resolver.lastSetup(), resolver.cacheDir()));
    throw Object.assign(err, { notSetUp: true });
  }
  try {
    resolver.preload(ctx.libtorch.libDir);
    const explicit = process.env.TORCHGRAPH_ADDON;
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    cached = (explicit ? require(path.resolve(explicit)) : require('node-gyp-build')(root)) as Binding;
  } catch (e) {
    throw new TorchGraphError('ERR_ADDON', explainLoadFailure(e as Error, ctx), { cause: e });
  }
  return cached;
}

/**
 * Freed heap memory back to the system now (malloc_trim): after a weight is replaced by its
 * prepacked form, the freed chunks between weights of other sizes would otherwise stay resident
 * (ResNet-50's optimize peaked 27 MiB higher without it).
 */
export function releaseFreedMemory(): void {
  binding().releaseMemory();
}
