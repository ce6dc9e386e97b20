// The one place that knows the raw addon: its types, and how to load it with an error
// that says how to fix a failure (the way sharp does). Nothing here is public API.
import * as fs from 'fs';
import * as path from 'path';
import type { DType, GraphData } from '../core/ir/serialized';
import { TorchGraphError } from '../core/errors';
import { packageRoot } from './package-root';

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
}

export interface RunOptions { measureMemory?: boolean }

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
  /** Runs a graph made by torchscript/shape-run.ts (it returns one tuple) and describes its elements. */
  inferValues(graph: GraphData, inputs: NativeValue[], options: { nodeByNode: boolean; metaParameters: boolean }): Promise<NativeInferResult>;
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
  methods: { module: string; name: string; graph: GraphData }[];
}

export interface Binding {
  Tensor: NativeTensorClass;
  load(path: string, device?: string): Promise<NativeModule>;
  /** Record names of a zip archive read by libtorch's PyTorchStreamReader, with the text of the small ones. */
  readArchive(path: string): Promise<{ records: string[]; texts: Record<string, string> }>;
  /** Tensors viewing records of the archive, each record read once. */
  loadTensors(path: string, specs: ArchiveTensorSpec[], device?: string): Promise<NativeTensor[]>;
  /** libtorch's schema of an operator overload ('' for .default), or null. */
  opSchema(name: string, overload: string): { text: string; defaults: (NativeOpDefault | undefined)[] } | null;
  createModule(spec: NativeModuleSpec, device?: string): NativeModule;
  torchVersion: string;
  libtorchHasCuda: boolean;
  cudaAvailable(): boolean;
  cudaDeviceCount(): number;
  /** libtorch's intra-op threads (at::get_num_threads). */
  numThreads(): number;
  memoryStats(): { cpuLiveBytes: number; cpuPeakBytes: number };
}

interface Resolved { version: string; libDir: string; source: string }

function recordedLibtorch(root: string): Resolved | null {
  try {
    return JSON.parse(fs.readFileSync(path.join(root, '.torchgraph', 'libtorch.json'), 'utf8')) as Resolved;
  } catch {
    return null;
  }
}

export function explainLoadFailure(e: Error, root: string): string {
  const msg = e.message;
  const rec = recordedLibtorch(root);
  const where = rec ? `libtorch ${rec.version} from ${rec.source} at ${rec.libDir}` : 'no libtorch recorded';
  const lines = [`torchgraph: could not load the native addon: ${msg.split('\n')[0]}`];
  if (/No native build was found/.test(msg)) {
    lines.push('The addon has not been built for this platform.',
      'Fix: run `npm install` in the torchgraph folder (it resolves libtorch and builds), or `npm run build:native`.');
  } else if (/lib(torch|c10|torch_cpu|gomp)[^ ]*\.so.*cannot open shared object file/.test(msg)) {
    lines.push(`The addon was built against ${where}, and that libtorch is no longer there.`,
      'Fix: run `npm install` again (reinstalls the pinned torch and rebuilds), or point TORCHGRAPH_LIBTORCH at an',
      'unpacked libtorch (or TORCHGRAPH_PYTHON at a Python with torch 2.13) and run `npm run build:native`.');
  } else if (/undefined symbol/.test(msg)) {
    lines.push(`The libtorch found at run time is not the one the addon was built against (${where}).`,
      'Fix: rebuild against the libtorch you want: `npm run build:native`.');
  } else {
    lines.push(`libtorch: ${where}. Fix: rebuild with \`npm run build:native\`.`);
  }
  return lines.join('\n');
}

let cached: Binding | undefined;

/** Load the addon once: TORCHGRAPH_ADDON (a .node path), else node-gyp-build (local build, then prebuilds). */
export function binding(): Binding {
  if (cached) return cached;
  const root = packageRoot();
  try {
    const explicit = process.env.TORCHGRAPH_ADDON;
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    cached = (explicit ? require(path.resolve(explicit)) : require('node-gyp-build')(root)) as Binding;
  } catch (e) {
    throw new TorchGraphError('ERR_ADDON', explainLoadFailure(e as Error, root), { cause: e });
  }
  return cached;
}
