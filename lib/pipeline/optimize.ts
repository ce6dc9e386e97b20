// optimize(): the fused graph as the user's model. Three steps, each holding every weight once:
//   1. portable rewrites on the original module (decompose, lower attention to SDPA, fold batch
//      norms, activations as one op): prepareGraphs with the machine-specific lowerings off;
//   2. the weights that graph reads move into a flat module of their own (fusion/own-weights.ts)
//      and the original module is disposed: what the graph does not read is freed;
//   3. machine-specific prepacking, one weight at a time, in place: each linear's weight is
//      replaced by oneDNN's reordered form (the same bytes; aten::to_dense gives it back
//      exactly, which is how save() writes the portable file).
// The optimized model runs the packed graph; save() writes the portable graph with plain weights.
import type { Graph, Value as GraphValue } from '../core/ir';
import { Module } from '../torchscript/module';
import { binding, type NativeGraph, type NativeTensor } from '../torchscript/binding';
import { native, nativeSync, TorchGraphError } from '../core/errors';
import { fromNativeValue, nativeOf, Tensor, toNativeValue, type Value } from '../torchscript/tensor';
import { resolveArguments, resolveNamedArguments, type ArgumentInfo } from '../torchscript/arguments';
import { propagateShapes, type InputSpec } from '../torchscript/propagate-shapes';
import { inPlaceWhereInputsDie } from '../fusion/in-place';
import { prepareGraphs, type FuseOptions } from './prepare';
import type { LoweringOutcome, LoweringReport } from '../fusion/lower-fused';
import { ownWeights, ownedModuleSpec, type OwnedWeight } from '../fusion/own-weights';
import { emitLinearReorder, lowerPackedLinear, planPackedLinears, type PackedLinearRequest } from '../fusion/linear-packed';
import { computeOnModule } from '../fusion/weights-on-module';
import { lowerConvPointwise, packConvWeights, planConvPointwise, type ConvPointwiseRequest } from '../fusion/conv-pointwise';
import { restoreLayouts } from '../fusion/channels-last';
import { foldBatchNorms, lowerConvBatchNorm, planBatchNormFolds } from '../fusion/fold-batch-norm';
import { partitionForLowering } from './fuse';
import { loweringOn, portableOnly } from '../fusion/lowerings';
import { packageVersion } from '../torchscript/package-root';
import { exportView } from '../transforms/module-views';
import * as nodePath from 'path';
import { checkTarget, programWriter, saveTorchScript, writeBeside } from './save-model';

export type OptimizeOptions = Omit<FuseOptions, 'partition'>;

/**
 * A weight the optimized model holds in a prepacked form: the attribute that holds it, whether it
 * replaced the plain weight (save() turns it back with aten::to_dense, transposed for an addmm's
 * (in, out) weight) or sits beside it, and its bytes.
 */
export interface PackedWeight { attribute: string; format: 'onednn-linear' | 'onednn-conv'; transposed: boolean; inPlace: boolean; bytes: number }

export interface OptimizeReport {
  /** The input specs the graph was planned for. */
  plannedFor: InputSpec[];
  /** What the portable lowering did (attention cores, folds, activations, in place). */
  lowering: LoweringReport;
  /** Linear layers on oneDNN-reordered weights (machine-specific, redone when a saved file is optimized). */
  packedLinears: LoweringOutcome[];
  /** Convolutions (with their residual add and activation) on oneDNN's pointwise kernels over prepacked weights, channels last. */
  convolutions: LoweringOutcome[];
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

/** Run graphs kept, by the shapes of the tensor arguments. */
export const MAX_PLANS = 4;

const OTHER_SHAPES = 'a call with other shapes re-plans the run graph for them from the portable graph (shapes, ops on the prepacked weights, '
  + `adds in place where an input dies at those shapes) in milliseconds; the ${MAX_PLANS} most recent plans are kept; the prepacked weights serve every shape`;

/** What a saved optimized model records (the archive's torchgraph.json). */
export interface OptimizedMetadata {
  torchgraph: string;
  torch: string;
  optimizedFrom: string;
  plannedFor: InputSpec[];
  options: OptimizeOptions;
  inputs: { name: string; type: string }[];
}

/** The fused model of one module, holding its own weights. dispose() frees them. */
export class OptimizedModel {
  readonly #module: Module;
  readonly #plans = new Map<string, Promise<NativeGraph>>();
  readonly #portable: Graph;
  /** The portable graph with its linears on the prepacked weights: what every plan starts from. */
  readonly #runBase: Graph;
  readonly #packed: ReadonlyMap<string, PackedWeight>;
  readonly #signature: readonly ArgumentInfo[];
  readonly #metadata: OptimizedMetadata;
  readonly #inPlace: boolean;
  readonly report: OptimizeReport;

  /** @internal Made by optimize(). */
  constructor(module: Module, portable: Graph, runBase: Graph, packed: ReadonlyMap<string, PackedWeight>, signature: readonly ArgumentInfo[],
    metadata: OptimizedMetadata, report: OptimizeReport, inPlace: boolean) {
    this.#module = module;
    this.#portable = portable;
    this.#packed = packed;
    this.#runBase = runBase;
    this.#signature = signature;
    this.#metadata = metadata;
    this.#inPlace = inPlace;
    this.report = report;
  }

  /** The shapes the run graphs kept were planned for (the most recent last). */
  get plans(): string[] { return [...this.#plans.keys()]; }

  /** @internal The run graph for these inputs' shapes: a kept plan, or a new one (the oldest dropped past MAX_PLANS). */
  async _plan(specs: readonly InputSpec[], key: string, shapesKnown = false): Promise<NativeGraph> {
    const kept = this.#plans.get(key);
    if (kept) {
      this.#plans.delete(key);
      this.#plans.set(key, kept);
      return kept;
    }
    const t0 = performance.now();
    const made = (async () => {
      const g = this.#runBase.clone();
      if (!shapesKnown) await propagateShapes(g, this.#module, specs);
      if (this.#inPlace) inPlaceWhereInputsDie(g);
      return nativeSync(() => this.#module._native.buildGraph(g.toData()));
    })();
    this.#plans.set(key, made);
    made.then(() => { this.report.timings[`plan ${key}`] = performance.now() - t0; }, () => this.#plans.delete(key));
    while (this.#plans.size > MAX_PLANS) {
      const [oldest, p] = this.#plans.entries().next().value as [string, Promise<NativeGraph>];
      this.#plans.delete(oldest);
      p.then((x) => x.dispose(), () => {});
    }
    return made;
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
    const key = planKey(args);
    const run = this.#plans.get(key) ? await this._plan([], key) : await this._plan(this.#specsOf(args), key);
    const r = await native(() => run.run(args));
    return fromNativeValue(r.output) as T;
  }

  #specsOf(args: readonly unknown[]): InputSpec[] {
    return args.flatMap((a) => (a !== null && typeof a === 'object' && 'shape' in a && 'dtype' in a ? [{ shape: [...(a as NativeTensor).shape], dtype: (a as NativeTensor).dtype }] : []));
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
      // Activations in place are so at any shape (adds are not: an operand may broadcast at others).
      const portable = this.#portable.clone();
      if (this.#inPlace) inPlaceWhereInputsDie(portable, { adds: false });
      if (!writer) return await saveTorchScript(file, portable, plain, this.#metadata, this.device);
      // torch.export programs are written by the resolved Python torch from a TorchScript file.
      const stem = nodePath.basename(file, '.pt2');
      await writeBeside(file, async (tmp) => {
        const ts = nodePath.join(nodePath.dirname(tmp), `${stem}.ts.pt`);
        await saveTorchScript(ts, portable, plain, this.#metadata, this.device);
        await writer(ts, tmp, this.#metadata.plannedFor, JSON.stringify(this.#metadata));
      });
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
      if (!p?.inPlace) return read;
      const dense = g.createNode('aten::to_dense', [read, g.insertConstant(null), g.insertConstant(null)], [{ kind: 'Tensor' }]).output;
      // A linear's weight read transposed (an addmm's (in, out) mat2) was reordered as W.
      return p.transposed ? g.createNode('aten::t', [dense], [{ kind: 'Tensor' }]).output : dense;
    }));
    return new Map(names.map((n, i) => [n, tensors[i]]));
  }

  dispose(): void {
    for (const p of this.#plans.values()) p.then((g) => g.dispose(), () => {});
    this.#plans.clear();
    this.#module.dispose();
  }
}

/** Each attribute's reads in `g`. */
function attributeReads(g: Graph): Map<string, GraphValue[]> {
  const out = new Map<string, GraphValue[]>();
  for (const u of g.inputs[0].users()) {
    if (u.kind !== 'prim::GetAttr') continue;
    const name = String(u.attr('name'));
    out.set(name, [...(out.get(name) ?? []), u.output]);
  }
  return out;
}

function attributeOf(g: Graph, v: GraphValue): string | undefined {
  const n = v.node;
  return n?.kind === 'prim::GetAttr' && n.inputs[0] === g.inputs[0] ? String(n.attr('name')) : undefined;
}

/**
 * Reorders, one weight at a time, the weight of every linear layer of `g` (the portable graph,
 * with its shapes) for oneDNN. The weight's attribute is replaced by its reordered form when every
 * read of it is such a weight (else the reordered copy is a new attribute, reported). `g` is not
 * changed: planRun rewrites each plan's ops onto the reordered attributes.
 */
async function packWeights(module: Module, g: Graph): Promise<{ outcomes: LoweringOutcome[]; packed: Map<string, PackedWeight> }> {
  const plan = planPackedLinears(g, true);
  const outcomes: LoweringOutcome[] = [...plan.refused].map(([id, reason]) => ({ id, lowered: false, reason }));
  const packed = new Map<string, PackedWeight>();
  const reads = attributeReads(g);
  const byAttribute = new Map<string, PackedLinearRequest[]>();
  for (const r of plan.requests) {
    const name = attributeOf(g, r.weight);
    if (!name) outcomes.push({ id: r.id, lowered: false, reason: 'the weight is not one of the model\'s tensors' });
    else byAttribute.set(name, [...(byAttribute.get(name) ?? []), r]);
  }
  for (const [name, requests] of byAttribute) {
    const transposed = requests[0].transposed;
    const same = requests.filter((r) => r.transposed === transposed);
    for (const r of requests) if (r.transposed !== transposed) outcomes.push({ id: r.id, lowered: false, reason: 'the weight is read both plain and transposed' });
    const weightOf = new Set(same.map((r) => r.linear));
    const inPlace = same.length === requests.length
      && (reads.get(name) ?? []).every((v) => v.uses.every((u) => weightOf.has(u.node) && u.index === u.node.argPosition(u.node.kind === 'aten::linear' ? 'weight' : 'mat2')));
    let tensor: NativeTensor;
    try {
      [tensor] = await computeOnModule(module._native, g, [same[0].weight], (h, map) => [emitLinearReorder(h, map.get(same[0].weight)!, transposed, same[0].rows)]);
    } catch (e) {
      const reason = `oneDNN could not reorder the weight: ${(e as Error).message.split('\n')[0]}`;
      for (const r of same) outcomes.push({ id: r.id, lowered: false, reason });
      continue;
    }
    const attribute = inPlace ? name : `${name}_reordered`;
    nativeSync(() => module._native.setAttribute(attribute, tensor));
    packed.set(name, { attribute, format: 'onednn-linear', transposed, inPlace, bytes: tensor.nbytes });
    tensor.dispose();
    for (const r of same) outcomes.push({ id: r.id, lowered: true, heldBytes: inPlace ? undefined : packed.get(name)!.bytes });
  }
  return { outcomes, packed };
}

/**
 * Eval batch norms folded into the convolutions before them, one at a time on the owned module:
 * each folded weight is computed (fusion/fold-batch-norm.ts), the pair lowered at once, and the
 * plain weight and the batch norm's tensors released as soon as nothing reads them, so folding
 * never holds a second copy of the convolution weights. In place on `g`; the folded weights are
 * graph constants until the weights move again (ownWeights).
 */
async function foldBatchNormsOneByOne(module: Module, g: Graph): Promise<LoweringOutcome[]> {
  const groups = partitionForLowering(g);
  const plan = planBatchNormFolds(g, groups);
  const outcomes: LoweringOutcome[] = [...plan.refused].map(([id, reason]) => ({ id, lowered: false, reason }));
  const released = Tensor.empty([0], 'float32');
  try {
    for (const r of plan.requests) {
      const folded = (await foldBatchNorms(module._native, g, [r])).get(r.id);
      const reads = [r.conv, r.bn].flatMap((n) => n.inputs).filter((v) => attributeOf(g, v) !== undefined);
      const o = lowerConvBatchNorm(g, groups.find((x) => x.id === r.id)!.nodes, r.id, folded);
      outcomes.push(o);
      if (!o.lowered) continue;
      for (const v of reads) {
        if (v.hasUses()) continue;
        const name = attributeOf(g, v)!;
        v.node!.destroy();
        if (!(attributeReads(g).get(name) ?? []).length) nativeSync(() => module._native.setAttribute(name, nativeOf(released)));
      }
    }
  } finally {
    released.dispose();
  }
  return outcomes;
}

/**
 * Convolutions (with the residual add and activation after them) onto oneDNN's pointwise kernels,
 * activations channels last, on `g` (in place): lowered first over the plain weights, and only
 * when the layouts can be restored are the weights prepacked, one at a time, each replacing its
 * attribute where only its convolution reads it.
 */
async function packConvolutions(module: Module, g: Graph): Promise<{ graph: Graph; outcomes: LoweringOutcome[]; packed: Map<string, PackedWeight> }> {
  const packed = new Map<string, PackedWeight>();
  const attempt = g.clone();
  const plan = planConvPointwise(attempt, partitionForLowering(attempt));
  const outcomes: LoweringOutcome[] = [...plan.refused].map(([id, reason]) => ({ id, lowered: false, reason }));
  const lowered: ConvPointwiseRequest[] = [];
  for (const r of plan.requests) {
    if (!attributeOf(attempt, r.weight)) {
      outcomes.push({ id: r.id, lowered: false, reason: 'the weight is not one of the model\'s tensors' });
      continue;
    }
    const o = lowerConvPointwise(attempt, r, r.weight);
    outcomes.push(o);
    if (o.lowered) lowered.push(r);
  }
  if (!lowered.length) return { graph: g, outcomes, packed };
  try {
    restoreLayouts(attempt, attempt.allNodes().filter((n) => n.kind === 'mkldnn::_convolution_pointwise').map((n) => n.output));
  } catch (e) {
    const reason = `activations cannot stay channels last: ${(e as Error).message}`;
    return { graph: g, outcomes: outcomes.map((o) => (o.lowered ? { id: o.id, lowered: false, reason } : o)), packed };
  }
  attempt.eliminateDeadCode();
  const reads = attributeReads(attempt);
  for (const r of lowered) {
    const name = attributeOf(attempt, r.weight)!;
    const users = (reads.get(name) ?? []).flatMap((v) => v.uses);
    const inPlace = !packed.has(name) && users.every((u) => u.node.kind === 'mkldnn::_convolution_pointwise' && u.index === u.node.argPosition('W'));
    const tensor = (await packConvWeights(module._native, attempt, [r])).get(r.id);
    if (tensor === undefined || typeof tensor === 'string') {
      throw new TorchGraphError('ERR_TORCH', `optimize: the weight ${name} could not be prepacked: ${tensor ?? 'no result'}`);
    }
    const attribute = inPlace ? name : `${name}_prepacked_${packed.size}`;
    nativeSync(() => module._native.setAttribute(attribute, tensor));
    if (!inPlace) {
      const conv = r.weight.uses.find((u) => u.node.kind === 'mkldnn::_convolution_pointwise');
      const read = attempt.withInsertPoint(attempt.block.firstNode!, () => attempt.createNode('prim::GetAttr', [attempt.inputs[0]], [{ kind: 'Tensor' }], { name: { kind: 's', value: attribute } }).output);
      conv?.node.replaceInput(conv.index, read);
    }
    packed.set(inPlace ? name : attribute, { attribute, format: 'onednn-conv', transposed: false, inPlace, bytes: tensor.nbytes });
    tensor.dispose();
  }
  return { graph: attempt, outcomes, packed };
}

/** The linears of `g` whose weight attribute was reordered, onto oneDNN's linear over the reordered attribute (in place on `g`). */
function rewriteToPacked(g: Graph, packed: ReadonlyMap<string, PackedWeight>): void {
  const self = g.inputs[0];
  for (const r of planPackedLinears(g, true).requests) {
    const name = attributeOf(g, r.weight);
    const p = name === undefined ? undefined : packed.get(name);
    if (!p || p.transposed !== r.transposed) continue;
    const value = p.inPlace ? r.weight
      : g.withInsertPoint(g.block.firstNode!, () => g.createNode('prim::GetAttr', [self], [{ kind: 'Tensor' }], { name: { kind: 's', value: p.attribute } }).output);
    lowerPackedLinear(g, r, value);
  }
  g.eliminateDeadCode();
}

/** A plan's key: the tensor arguments' shapes and dtypes. */
function planKey(args: readonly unknown[]): string {
  return args.map((a) => (a !== null && typeof a === 'object' && 'shape' in a && 'dtype' in a ? `${(a as NativeTensor).shape.join('x')}:${(a as NativeTensor).dtype}` : typeof a)).join(',');
}

/** `g`'s weights moved off `from` into a new flat module (ownWeights), wrapped with forward's arguments. */
async function moveWeights(from: Module, g: Graph, signature: readonly ArgumentInfo[]): Promise<{ module: Module; weights: OwnedWeight[] }> {
  const owned = await ownWeights(from._native, g);
  try {
    const handle = nativeSync(() => binding().createModule(ownedModuleSpec(owned.graph, owned.tensors), from.device));
    return { module: Module._fromNative(handle, from.path, signature.length ? signature : graphSignature(owned.graph)), weights: owned.weights };
  } finally {
    for (const t of owned.tensors.values()) t.dispose();
  }
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
  // Adds in place depend on the shapes (an operand may broadcast at others): each plan makes its own.
  // Batch norms are folded after the weights have moved, one at a time (foldBatchNormsOneByOne).
  const fuseOptions: FuseOptions = { ...portableOnly(options), inPlace: false, foldBatchNorms: false };
  let portable: Graph;
  let lowering: LoweringReport;
  let fromSaved = false;
  if (saved && typeof saved.torchgraph === 'string') {
    // Already rewritten by torchgraph: only the weights move and are prepacked again.
    portable = exportView(module, 'inlined').graph;
    lowering = { attentionCores: [], projections: [], linearActivations: [], notLowered: [], heldWeightBytes: 0 };
    fromSaved = true;
  } else {
    const p = await time('prepare', () => prepareGraphs(module, inputs, fuseOptions));
    portable = p.fused;
    lowering = p.lowering;
  }
  const owned = await time('own weights', () => moveWeights(module, portable, signature));
  // The original's tensors that the graph does not read are freed here.
  module.dispose();
  let ownedModule = owned.module;
  let weights = owned.weights;
  if (!fromSaved && loweringOn('foldBatchNorms', options, device)) {
    try {
      const folds = await time('fold batch norms', () => foldBatchNormsOneByOne(ownedModule, portable));
      if (folds.length) lowering.foldedBatchNorms = folds;
      if (folds.some((f) => f.lowered)) {
        // The folded weights (graph constants) move too; the released plain weights stay behind.
        const again = await time('own folded weights', () => moveWeights(ownedModule, portable, signature));
        const first = new Map(weights.map((w) => [w.name, w.source]));
        weights = again.weights.map((w) => ({ ...w, source: first.get(w.source) ?? (w.source === 'constant' ? 'folded batch norm' : w.source) }));
        ownedModule.dispose();
        ownedModule = again.module;
        await propagateShapes(portable, ownedModule, inputs);
      }
    } catch (e) {
      ownedModule.dispose();
      throw e;
    }
  }
  try {
    // The graph keeps the shapes propagated when it was lowered (ownWeights copies them over).
    if (fromSaved) await propagateShapes(portable, ownedModule, inputs);
    const convs = await time('prepack convolutions', () => (loweringOn('pointwiseConvolutions', options, device)
      ? packConvolutions(ownedModule, portable) : { graph: portable.clone(), outcomes: [], packed: new Map<string, PackedWeight>() }));
    const runBase = convs.graph === portable ? portable.clone() : convs.graph;
    const packing = await time('prepack linears', () => (loweringOn('packedLinears', options, device)
      ? packWeights(ownedModule, runBase) : { outcomes: [], packed: new Map<string, PackedWeight>() }));
    rewriteToPacked(runBase, packing.packed);
    for (const [k, v] of convs.packed) packing.packed.set(k, v);
    const metadata: OptimizedMetadata = {
      torchgraph: packageVersion(), torch: binding().torchVersion, optimizedFrom: saved?.optimizedFrom ?? module.path,
      plannedFor: inputs.map((s) => ({ shape: [...s.shape], dtype: s.dtype })), options: { ...options },
      inputs: signature.map((a) => ({ name: a.name, type: a.type })),
    };
    const report: OptimizeReport = {
      plannedFor: metadata.plannedFor, lowering, packedLinears: packing.outcomes, convolutions: convs.outcomes, weights,
      packed: [...packing.packed.values()], heldBytes: ownedModule.parameterBytes, originalBytes, otherShapes: OTHER_SHAPES, timings,
    };
    const model = new OptimizedModel(ownedModule, portable, runBase, packing.packed, signature, metadata, report, loweringOn('inPlace', options, device));
    const key = planKey(inputs.map((s) => ({ shape: s.shape, dtype: s.dtype })));
    await time('plan', () => model._plan(inputs, key, true));
    // The plain weights, the decomposition's graphs and shape runs are gone: their heap goes back.
    binding().releaseMemory();
    return model;
  } catch (e) {
    ownedModule.dispose();
    throw e;
  }
}
