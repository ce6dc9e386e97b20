// optimize(): the fused graph as the user's model. Three steps, each holding every weight once:
//   1. portable rewrites on the original module (decompose, lower attention to SDPA, fold batch
//      norms, activations as one op): prepareGraphs with the machine-specific lowerings off;
//   2. the weights that graph reads move into a flat module of their own (fusion/own-weights.ts)
//      and the original module is disposed: what the graph does not read is freed;
//   3. machine-specific prepacking, one weight at a time, in place: each linear's weight is
//      replaced by oneDNN's reordered form (the same bytes; aten::to_dense gives it back
//      exactly, which is how save() writes the portable file).
// The optimized model runs the packed graph; save() writes the portable graph with plain weights.
import type { Graph } from '../core/ir';
import { Module } from '../torchscript/module';
import { binding, type NativeGraph, type NativeTensor } from '../torchscript/binding';
import { native, nativeSync, TorchGraphError } from '../core/errors';
import { fromNativeValue, Tensor, toNativeValue, type Value } from '../torchscript/tensor';
import { resolveArguments, resolveNamedArguments, type ArgumentInfo } from '../torchscript/arguments';
import type { InputSpec } from '../torchscript/propagate-shapes';
import { prepareGraphs, type FuseOptions } from './prepare';
import type { LoweringOutcome, LoweringReport } from '../fusion/lower-fused';
import { ownWeights, ownedModuleSpec, type OwnedWeight } from '../fusion/own-weights';
import { emitLinearReorder, lowerPackedLinear, planPackedLinears, type PackedLinearRequest } from '../fusion/linear-packed';
import { computeOnModule } from '../fusion/weights-on-module';
import { runtimeInfo } from '../torchscript/runtime-info';
import * as fs from 'fs';
import { checkTarget, programWriter, saveTorchScript, temporaryBeside } from './save-model';

export type OptimizeOptions = Omit<FuseOptions, 'partition'>;

/** A weight the optimized model holds in a prepacked form, and how save() gets the plain weight back. */
export interface PackedWeight { attribute: string; format: 'onednn-linear'; transposed: boolean; bytes: number }

export interface OptimizeReport {
  /** The input specs the graph was planned for. */
  plannedFor: InputSpec[];
  /** What the portable lowering did (attention cores, folds, activations, in place). */
  lowering: LoweringReport;
  /** Linear layers on oneDNN-reordered weights (machine-specific, redone when a saved file is optimized). */
  packedLinears: LoweringOutcome[];
  /** The tensors the optimized model holds, by attribute, with where each came from. */
  weights: OwnedWeight[];
  packed: PackedWeight[];
  /** Bytes of every tensor the optimized model holds (packed weights included), and of the original module's parameters and buffers. */
  heldBytes: number;
  originalBytes: number;
  /** How calls with other shapes than `plannedFor` run. */
  otherShapes: string;
  timings: Record<string, number>;
}

const OTHER_SHAPES = 'one graph for every shape: the prepacked weights serve any row count, so a call with another batch size or sequence length '
  + 'runs the same graph (not re-planned); the attention and layout choices were made for the planned shapes';

/** What a saved optimized model records (the archive's torchgraph.json). */
export interface OptimizedMetadata {
  torchgraph: string;
  torch: string;
  optimizedFrom: string;
  plannedFor: InputSpec[];
  options: OptimizeOptions;
  inputs: { name: string; type: string }[];
}

function packageVersion(): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('../../package.json') as { version: string }).version;
}

/** The fused model of one module, holding its own weights. dispose() frees them. */
export class OptimizedModel {
  readonly #module: Module;
  readonly #run: NativeGraph;
  readonly #portable: Graph;
  readonly #packed: ReadonlyMap<string, PackedWeight>;
  readonly #signature: readonly ArgumentInfo[];
  readonly #metadata: OptimizedMetadata;
  readonly report: OptimizeReport;

  /** @internal Made by optimize(). */
  constructor(module: Module, run: NativeGraph, portable: Graph, packed: ReadonlyMap<string, PackedWeight>, signature: readonly ArgumentInfo[],
    metadata: OptimizedMetadata, report: OptimizeReport) {
    this.#module = module;
    this.#run = run;
    this.#portable = portable;
    this.#packed = packed;
    this.#signature = signature;
    this.#metadata = metadata;
    this.report = report;
  }

  get device(): string { return this.#module.device; }
  get disposed(): boolean { return this.#module.disposed; }
  /** Bytes of the tensors this model holds. */
  get heldBytes(): number { return this.#module.parameterBytes; }

  /** The inputs forward takes: the original model's names, types and defaults. */
  inputs(): ArgumentInfo[] { return this.#signature.map((a) => ({ ...a })); }

  /**
   * Run the optimized graph, off the JS thread. Inputs in order or by name, as Module.forward;
   * arguments not given take the original model's defaults. Tensors must have the planned dtype
   * and rank (ERR_INVALID_ARG names the argument); sizes may differ.
   */
  async forward<T extends Value = Value>(...inputs: Value[] | [{ [name: string]: Value }]): Promise<T> {
    if (this.disposed) throw new TorchGraphError('ERR_DISPOSED', 'the optimized model was disposed');
    const v = inputs[0];
    const named = inputs.length === 1 && v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Tensor) && Object.getPrototypeOf(v) === Object.prototype;
    const args = named
      ? resolveNamedArguments(this.#signature, Object.fromEntries(Object.entries(v as Record<string, Value>).map(([k, x]) => [k, toNativeValue(x)])))
      : resolveArguments(this.#signature, (inputs as Value[]).map(toNativeValue));
    if (args.length > this.#signature.length) {
      throw new TorchGraphError('ERR_INVALID_ARG', `forward takes ${this.#signature.length} inputs (${this.#signature.map((a) => a.name).join(', ')}), ${args.length} given`);
    }
    this.#checkInputs(args);
    const r = await native(() => this.#run.run(args));
    return fromNativeValue(r.output) as T;
  }

  #checkInputs(args: readonly unknown[]): void {
    const planned = this.#metadata.plannedFor;
    args.forEach((a, i) => {
      const spec = planned[i];
      const name = this.#signature[i]?.name ?? `input ${i}`;
      const t = a as NativeTensor;
      if (!spec) return;
      if (typeof a !== 'object' || a === null || !('dtype' in t) || !('shape' in t)) {
        throw new TorchGraphError('ERR_INVALID_ARG', `forward: ${name} must be a Tensor (${spec.dtype}, rank ${spec.shape.length})`);
      }
      if (t.dtype !== spec.dtype) throw new TorchGraphError('ERR_INVALID_ARG', `forward: ${name} is ${t.dtype}, the model was optimized for ${spec.dtype}`);
      if (t.shape.length !== spec.shape.length) {
        throw new TorchGraphError('ERR_INVALID_ARG', `forward: ${name} has rank ${t.shape.length} ([${t.shape.join(', ')}]), the model was optimized for rank ${spec.shape.length} ([${spec.shape.join(', ')}])`);
      }
      if (t.device !== this.device) throw new TorchGraphError('ERR_INVALID_ARG', `forward: ${name} is on ${t.device}, the model on ${this.device}`);
    });
  }

  /**
   * Write the portable graph (SDPA cores, folded batch norms, in-place ops; no prepacking, which
   * is specific to this machine) with plain weights: TorchScript for any path but `.pt2`, which
   * writes a torch.export program. `torch.jit.load(path)` runs it in Python; optimize() on the
   * loaded file prepacks it again without decomposing. Refuses an existing file unless
   * `overwrite`; the file appears whole or not at all.
   */
  async save(path: string, options: { overwrite?: boolean } = {}): Promise<void> {
    if (this.disposed) throw new TorchGraphError('ERR_DISPOSED', 'the optimized model was disposed');
    if (options === null || typeof options !== 'object') throw new TorchGraphError('ERR_INVALID_ARG', 'save(path, options): options must be an object');
    const file = checkTarget(path, options.overwrite === true);
    const program = file.endsWith('.pt2');
    const writer = program ? programWriter() : undefined;
    const plain = await this.#plainWeights();
    try {
      if (!writer) return await saveTorchScript(file, this.#portable, plain, this.#metadata, this.device);
      // torch.export programs are written by the resolved Python torch from the TorchScript file.
      const ts = temporaryBeside(file, '.pt');
      try {
        await saveTorchScript(ts, this.#portable, plain, this.#metadata, this.device);
        const tmp = temporaryBeside(file, '.pt2');
        try {
          await writer(ts, tmp, this.#metadata.plannedFor, JSON.stringify(this.#metadata));
          fs.renameSync(tmp, file);
        } finally {
          fs.rmSync(tmp, { force: true });
        }
      } finally {
        fs.rmSync(ts, { force: true });
      }
    } finally {
      for (const t of plain.values()) t.dispose();
    }
  }

  /** Every weight the portable graph reads, packed ones turned back into plain tensors (copies, freed after saving). */
  async #plainWeights(): Promise<Map<string, NativeTensor>> {
    const names = [...new Set(this.#portable.inputs[0].users().map((u) => String(u.attr('name'))))];
    const reads = names.map((n) => this.#portable.inputs[0].users().find((u) => String(u.attr('name')) === n)!.output);
    const tensors = await computeOnModule(this.#module._native, this.#portable, reads, (g, map) => names.map((n, i) => {
      const read = map.get(reads[i])!;
      const p = this.#packed.get(n);
      if (!p) return read;
      const dense = g.createNode('aten::to_dense', [read, g.insertConstant(null), g.insertConstant(null)], [{ kind: 'Tensor' }]).output;
      return p.transposed ? g.createNode('aten::t', [dense], [{ kind: 'Tensor' }]).output : dense;
    }));
    return new Map(names.map((n, i) => [n, tensors[i]]));
  }

  dispose(): void {
    this.#run.dispose();
    this.#module.dispose();
  }
}

/** Each attribute's reads in `g`. */
function attributeReads(g: Graph): Map<string, import('../core/ir').Value[]> {
  const out = new Map<string, import('../core/ir').Value[]>();
  for (const u of g.inputs[0].users()) {
    if (u.kind !== 'prim::GetAttr') continue;
    const name = String(u.attr('name'));
    out.set(name, [...(out.get(name) ?? []), u.output]);
  }
  return out;
}

/**
 * Linear layers onto oneDNN-reordered weights, one weight at a time: the weight's attribute is
 * replaced by its reordered form when every read of it is a packed linear's weight (else the
 * reordered copy is a new attribute, reported). In place on `g` and the module.
 */
async function packLinearsInPlace(module: Module, g: Graph): Promise<{ outcomes: LoweringOutcome[]; packed: Map<string, PackedWeight> }> {
  const plan = planPackedLinears(g, true);
  const outcomes: LoweringOutcome[] = [...plan.refused].map(([id, reason]) => ({ id, lowered: false, reason }));
  const packed = new Map<string, PackedWeight>();
  const reads = attributeReads(g);
  const byAttribute = new Map<string, PackedLinearRequest[]>();
  for (const r of plan.requests) {
    const n = r.weight.node;
    if (n?.kind !== 'prim::GetAttr' || n.inputs[0] !== g.inputs[0]) {
      outcomes.push({ id: r.id, lowered: false, reason: 'the weight is not one of the model\'s tensors' });
      continue;
    }
    const name = String(n.attr('name'));
    byAttribute.set(name, [...(byAttribute.get(name) ?? []), r]);
  }
  for (const [name, requests] of byAttribute) {
    const transposed = requests[0].transposed;
    const weightUses = new Set(requests.filter((r) => r.transposed === transposed).map((r) => r.linear));
    const inPlace = requests.every((r) => r.transposed === transposed)
      && (reads.get(name) ?? []).every((v) => v.uses.every((u) => weightUses.has(u.node) && u.index === u.node.argPosition(u.node.kind === 'aten::linear' ? 'weight' : 'mat2')));
    const first = requests[0];
    let tensor: NativeTensor;
    try {
      [tensor] = await computeOnModule(module._native, g, [first.weight], (h, map) => [emitLinearReorder(h, map.get(first.weight)!, transposed, first.rows)]);
    } catch (e) {
      const reason = `oneDNN could not reorder the weight: ${(e as Error).message.split('\n')[0]}`;
      for (const r of requests) outcomes.push({ id: r.id, lowered: false, reason });
      continue;
    }
    const attribute = inPlace ? name : `${name}_reordered`;
    nativeSync(() => module._native.setAttribute(attribute, tensor));
    const bytes = tensor.nbytes;
    tensor.dispose();
    const self = g.inputs[0];
    const value = inPlace ? first.weight
      : g.withInsertPoint(g.block.firstNode!, () => g.createNode('prim::GetAttr', [self], [{ kind: 'Tensor' }], { name: { kind: 's', value: attribute } }).output);
    if (inPlace) packed.set(name, { attribute: name, format: 'onednn-linear', transposed, bytes });
    for (const r of requests) {
      if (r.transposed !== transposed) {
        outcomes.push({ id: r.id, lowered: false, reason: 'the weight is read both plain and transposed' });
        continue;
      }
      outcomes.push({ ...lowerPackedLinear(g, r, value), heldBytes: inPlace ? undefined : bytes });
    }
  }
  g.eliminateDeadCode();
  return { outcomes, packed };
}

/** The arguments of the graph after self, as the owned module's forward signature when the original has none to give. */
function graphSignature(g: Graph): ArgumentInfo[] {
  return g.inputs.slice(1).map((v, i) => ({ name: v.name?.replace(/\.\d+$/, '') ?? `input_${i}`, type: v.type.kind === 'Tensor' ? 'Tensor' : v.type.kind, hasDefault: false, kwargOnly: false }));
}

/**
 * The fused model of `module` for inputs like `inputs`, as a model of its own. optimize takes the
 * module over: it is disposed once its weights have moved (the tensors the fused graph does not
 * read are freed then), so use the returned model, not `module`, afterwards. A file saved by
 * OptimizedModel.save() is only prepacked again.
 */
export async function optimize(module: Module, inputs: readonly InputSpec[], options: OptimizeOptions = {}): Promise<OptimizedModel> {
  if (!(module instanceof Module)) throw new TorchGraphError('ERR_INVALID_ARG', 'optimize(module, inputs): module must be a loaded Module');
  if (!Array.isArray(inputs)) throw new TorchGraphError('ERR_INVALID_ARG', 'optimize(module, inputs): inputs must be an array of { shape, dtype } specs');
  const timings: Record<string, number> = {};
  const time = async <T>(name: string, f: () => T | Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try { return await f(); } finally { timings[name] = performance.now() - t0; }
  };
  const device = module.device;
  const originalBytes = module.parameterBytes;
  const signature = module._signature('forward').map((a) => ({ ...a }));
  const saved = module.metadata as OptimizedMetadata | null;
  const fuseOptions: FuseOptions = { ...options, packedLinears: false, pointwiseConvolutions: false };
  let portable: Graph;
  let lowering: LoweringReport;
  let fromSaved = false;
  if (saved && typeof saved.torchgraph === 'string') {
    // Already rewritten by torchgraph: only the weights move and are prepacked again.
    const { exportView } = await import('../transforms/module-views');
    portable = exportView(module, 'inlined').graph;
    lowering = { attentionCores: [], projections: [], linearActivations: [], notLowered: [], heldWeightBytes: 0 };
    fromSaved = true;
  } else {
    const p = await time('prepare', () => prepareGraphs(module, inputs, fuseOptions));
    portable = p.fused;
    lowering = p.lowering;
  }
  void fromSaved;
  const owned = await time('own weights', () => ownWeights(module._native, portable));
  let ownedModule: Module;
  try {
    const handle = nativeSync(() => binding().createModule(ownedModuleSpec(owned.graph, owned.tensors), device));
    ownedModule = Module._fromNative(handle, module.path, signature.length ? signature : graphSignature(owned.graph));
  } finally {
    for (const t of owned.tensors.values()) t.dispose();
  }
  // The original's tensors that the graph does not read are freed here.
  module.dispose();
  try {
    const run = owned.graph.clone();
    const packing = await time('prepack', async () => {
      if (device !== 'cpu' || !runtimeInfo().hasMkldnn || options.packedLinears === false) return { outcomes: [], packed: new Map<string, PackedWeight>() };
      // The graph keeps the shapes propagated when it was lowered (ownWeights copies them over).
      return packLinearsInPlace(ownedModule, run);
    });
    const built = nativeSync(() => ownedModule._native.buildGraph(run.toData()));
    const metadata: OptimizedMetadata = {
      torchgraph: packageVersion(), torch: binding().torchVersion, optimizedFrom: saved?.optimizedFrom ?? module.path,
      plannedFor: inputs.map((s) => ({ shape: [...s.shape], dtype: s.dtype })), options: { ...options },
      inputs: signature.map((a) => ({ name: a.name, type: a.type })),
    };
    const report: OptimizeReport = {
      plannedFor: metadata.plannedFor, lowering, packedLinears: packing.outcomes, weights: owned.weights,
      packed: [...packing.packed.values()], heldBytes: ownedModule.parameterBytes, originalBytes, otherShapes: OTHER_SHAPES, timings,
    };
    return new OptimizedModel(ownedModule, built, owned.graph, packing.packed, signature, metadata, report);
  } catch (e) {
    ownedModule.dispose();
    throw e;
  }
}
