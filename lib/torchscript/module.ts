import { binding, ModuleTreeData, NativeModule, NativeValue, TensorInfoData } from './binding';
import { native, nativeSync, TorchGraphError } from '../core/errors';
import { argumentsFromSchema, resolveArguments, resolveNamedArguments, type ArgumentInfo } from './arguments';
import { fromNativeValue, Tensor, Value, toNativeValue } from './tensor';
import { describeLoadFailure } from './archive';
import { checkDevice } from './tensor-checks';

/** Inputs by argument name: `{ src: x, is_causal: true }`. */
export type NamedInputs = { [name: string]: Value };

/** One plain object, for a method whose first argument is not a Dict (whose value would itself
 * be an object), is inputs by name; keys that name no argument are then an error. */
function isNamed(inputs: readonly unknown[], signature: readonly ArgumentInfo[]): boolean {
  const v = inputs[0];
  if (inputs.length !== 1 || v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Tensor) return false;
  if (Object.getPrototypeOf(v) !== Object.prototype) return false;
  return !(signature[0]?.type.startsWith('Dict['));
}

export interface LoadOptions {
  /** 'cpu' (default), 'cuda' or 'cuda:N'. */
  device?: string;
}

export interface RunResult {
  output: Value;
  /** Measured peak of live tensor storage above the level before the run (bytes); -1 if not measured. */
  peakBytes: number;
  ms: number;
}

export interface ParameterInfo extends TensorInfoData {
  /** Dotted name from the root, as in state_dict(). */
  qualifiedName: string;
  kind: 'parameter' | 'buffer';
}

/** @internal What a module built in memory from a file carries besides its graph. */
export interface BuiltModuleExtras {
  /** The file's torchgraph.json text (a .pt2 program's extra/torchgraph.json). */
  metadata?: string;
  checkShapes?: (shapes: readonly (readonly number[] | undefined)[]) => void;
}

/** A TorchScript module loaded by libtorch. dispose() frees its tensors. */
export class Module {
  readonly #handle: NativeModule;
  readonly #signatures = new Map<string, ArgumentInfo[]>();
  readonly path: string;
  /** The metadata text of a module built in memory from a file (a .pt2 program's extra/torchgraph.json). */
  readonly #metadataText: string | undefined;
  /** The input shapes the file allows (a torch.export program's constraints), checked before each run. */
  readonly #checkShapes: ((shapes: readonly (readonly number[] | undefined)[]) => void) | undefined;

  private constructor(handle: NativeModule, path: string, forward?: readonly ArgumentInfo[], extras: BuiltModuleExtras = {}) {
    this.#handle = handle;
    this.path = path;
    this.#metadataText = extras.metadata;
    this.#checkShapes = extras.checkShapes;
    // A module built in memory from a graph has no defaults in its schema: it takes the model's.
    if (forward) this.#signatures.set('forward', forward.map((a) => ({ ...a })));
  }

  /** Load a TorchScript file (traced or scripted). Rejects with code ERR_LOAD on bad files. */
  static async load(path: string, options: LoadOptions = {}): Promise<Module> {
    if (typeof path !== 'string' || path.length === 0) {
      throw new TorchGraphError('ERR_INVALID_ARG', 'load(path): path must be a non-empty string');
    }
    // The C++ side would read the path up to the NUL and load another file.
    if (path.includes('\0')) {
      throw new TorchGraphError('ERR_INVALID_ARG', `load(path): the path ${JSON.stringify(path)} holds a NUL character`);
    }
    if (options === null || typeof options !== 'object') {
      throw new TorchGraphError('ERR_INVALID_ARG', 'load(path, options): options must be an object');
    }
    const device = options.device === undefined ? 'cpu' : checkDevice(options.device, 'load(path, {device})');
    try {
      return new Module(await native(() => binding().load(path, device)), path);
    } catch (e) {
      const what = e instanceof TorchGraphError && e.code === 'ERR_LOAD' ? describeLoadFailure(path) : undefined;
      if (what) throw new TorchGraphError('ERR_LOAD', `cannot load '${path}': ${what}`, { cause: e });
      throw e;
    }
  }

  get device(): string { return nativeSync(() => this.#handle.device); }
  get disposed(): boolean { return this.#handle.disposed; }

  /** The submodule tree: class types, direct parameters and buffers, plain attributes. */
  tree(): ModuleTreeData { return nativeSync(() => this.#handle.info()); }

  get methods(): string[] { return this.tree().methods; }

  /** Every parameter and buffer with its state_dict name. */
  parameters(): ParameterInfo[] {
    const out: ParameterInfo[] = [];
    const walk = (m: ModuleTreeData) => {
      const prefix = m.path ? m.path + '.' : '';
      for (const p of m.parameters) out.push({ ...p, qualifiedName: prefix + p.name, kind: 'parameter' });
      for (const b of m.buffers) out.push({ ...b, qualifiedName: prefix + b.name, kind: 'buffer' });
      m.children.forEach(walk);
    };
    walk(this.tree());
    return out;
  }

  /** Bytes held by parameters and buffers. */
  get parameterBytes(): number { return nativeSync(() => this.#handle.paramBytes); }

  /**
   * The arguments of a method (self left out), from its TorchScript schema: name, type and
   * default. A scripted nn.TransformerEncoder says
   * [{name: 'src', type: 'Tensor', hasDefault: false}, {name: 'mask', type: 'Optional[Tensor]',
   * hasDefault: true, default: null}, ...]; ints are BigInt. Traced modules have no defaults.
   */
  signature(method = 'forward'): ArgumentInfo[] {
    return this._signature(method).map((a) => ({ ...a }));
  }

  /** @internal The cached signature (not to be modified). */
  _signature(method = 'forward'): readonly ArgumentInfo[] {
    let s = this.#signatures.get(method);
    if (!s) {
      s = argumentsFromSchema(nativeSync(() => this.#handle.signature(method)));
      this.#signatures.set(method, s);
    }
    return s;
  }

  /**
   * Every argument's value for a run of `method`: the inputs given, then the defaults of the
   * arguments after them (see lib/torchscript/arguments.ts). Throws ERR_INVALID_ARG naming an argument
   * that has no default and is not given.
   */
  _resolveInputs(inputs: readonly NativeValue[], method = 'forward'): NativeValue[] {
    return resolveArguments(this._signature(method), inputs, method);
  }

  /** The inputs `forward` (or `method`) takes: names, TorchScript types and defaults (the
   * schema, self left out). Arguments with a default may be left out when running. */
  inputs(method = 'forward'): ArgumentInfo[] {
    return this.signature(method);
  }

  /**
   * Run `forward` under inference mode, off the JS thread. Inputs in order
   * (`forward(x, mask)`), or by name (`forward({ src: x, is_causal: true })`); either way the
   * arguments not given take their defaults. The output is a `Value` (a Tensor, or tuples and
   * lists of them, ...); name what the model returns with `m.forward<Tensor>(x)`.
   */
  async forward<T extends Value = Value>(...inputs: Value[] | [NamedInputs]): Promise<T> {
    const args = isNamed(inputs, this._signature('forward')) ? inputs[0] as NamedInputs : inputs as Value[];
    return (await this.run('forward', args)).output as T;
  }

  /** Run any method, optionally measuring peak memory; inputs in order or by name. */
  async run(method: string, inputs: Value[] | NamedInputs, options: { measureMemory?: boolean } = {}): Promise<RunResult> {
    if (typeof method !== 'string' || method === '') {
      throw new TorchGraphError('ERR_INVALID_ARG', 'run(method, inputs): method must be a non-empty string');
    }
    const plainObject = inputs !== null && typeof inputs === 'object' && Object.getPrototypeOf(inputs) === Object.prototype;
    if (!Array.isArray(inputs) && !plainObject) {
      throw new TorchGraphError('ERR_INVALID_ARG', 'run(method, inputs): inputs must be an array, or an object of inputs by name');
    }
    if (options === null || typeof options !== 'object') {
      throw new TorchGraphError('ERR_INVALID_ARG', 'run(method, inputs, options): options must be an object');
    }
    const nativeInputs = Array.isArray(inputs)
      ? this._resolveInputs(inputs.map(toNativeValue), method)
      : resolveNamedArguments(
          this._signature(method), Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, toNativeValue(v)])), method);
    if (method === 'forward') {
      const shapeOf = (a: NativeValue) => (a !== null && typeof a === 'object' && 'shape' in a
        ? (a as { shape: number[] }).shape
        : undefined);
      this._checkInputShapes(nativeInputs.map(shapeOf));
    }
    const r = await native(() => this.#handle.run(method, nativeInputs, options));
    return { output: fromNativeValue(r.output), peakBytes: r.peakBytes, ms: r.ms };
  }

  dispose(): void { this.#handle.dispose(); }

  /** @internal Wrap a module built in memory (lib/program/: a torch.export program; lib/pipeline/optimize.ts), optionally with
   * forward's arguments. */
  static _fromNative(handle: NativeModule, path: string, forward?: readonly ArgumentInfo[], extras?: BuiltModuleExtras): Module {
    return new Module(handle, path, forward, extras);
  }

  /**
   * @internal Throws ERR_INVALID_ARG when input shapes break what the file allows (a torch.export
   * program's static sizes and Dim ranges); `shapes[i]` is forward's i-th argument's.
   */
  _checkInputShapes(shapes: readonly (readonly number[] | undefined)[]): void {
    this.#checkShapes?.(shapes);
  }

  /** The archive's torchgraph.json (an optimized model saved by torchgraph, .pt or .pt2), parsed; null for other files. */
  get metadata(): Record<string, unknown> | null {
    const text = this.#metadataText ?? nativeSync(() => this.#handle.metadata);
    if (!text) return null;
    try {
      return JSON.parse(text) as Record<string, unknown>;
    } catch {
      return null;
    }
  }

  /** @internal The native handle, for lib/ (graph export and build); not part of the public API. */
  get _native(): NativeModule { return this.#handle; }
}

/** Shorthand for Module.load. */
export function load(path: string, options?: LoadOptions): Promise<Module> {
  return Module.load(path, options);
}
