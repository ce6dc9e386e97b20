// optimize(): the fused graph as the user's model, holding every weight once. The rewrite
// (optimize-rewrite.ts) runs in a worker thread by default (optimize-worker.ts); the model it
// makes runs the prepacked graph here, re-planned per input shapes, and save() writes the
// portable graph with plain weights.
import { moduleSelf, type Graph } from '../core/ir';
import { Module } from '../torchscript/module';
import { releaseFreedMemory, type NativeGraph, type NativeTensor } from '../torchscript/binding';
import { native, nativeSync, TorchGraphError } from '../core/errors';
import { fromNativeValue, Tensor, toNativeValue, type Value } from '../torchscript/tensor';
import { resolveArguments, resolveNamedArguments, type ArgumentInfo } from '../torchscript/arguments';
import { propagateShapes, type InputSpec } from '../torchscript/propagate-shapes';
import { inPlaceWhereInputsDie } from '../fusion/in-place';
import { computeOnModule } from '../fusion/weights-on-module';
import { OWN_OP_SCHEMAS, UNPACK_CONV2D_KIND, UNPACK_LINEAR_KIND } from '../core/ops/own-schemas';
import type { PackedWeight } from '../fusion/lowering-pass';
import * as nodePath from 'path';
import { checkTarget, programWriter, saveTorchScript, writeBeside } from './save-model';
import {
  rewriteModel, timeOriginalBeforeRewrite, type OptimizedMetadata, type OptimizeOptions, type OptimizeReport,
} from './optimize-rewrite';
import { rewriteInWorker } from './optimize-worker';

export type { OptimizedMetadata, OptimizeOptions, OptimizeReport, PackedWeight };

/** Run graphs kept, by the shapes of the tensor arguments. */
export const MAX_PLANS = 4;

/** The fused model of one module, holding its own weights. dispose() frees them. */
export class OptimizedModel {
  readonly #module: Module;
  readonly #plans = new Map<string, Promise<NativeGraph>>();
  /** Calls in flight per plan: a plan dropped (past MAX_PLANS, or by dispose) while one runs on it is freed after it. */
  readonly #running = new Map<Promise<NativeGraph>, number>();
  readonly #dropped = new Set<Promise<NativeGraph>>();
  readonly #portable: Graph;
  /** The portable graph with its linears on the prepacked weights: what every plan starts from. */
  readonly #runBase: Graph;
  readonly #packed: ReadonlyMap<string, PackedWeight>;
  readonly #signature: readonly ArgumentInfo[];
  readonly #metadata: OptimizedMetadata;
  readonly #inPlace: boolean;
  readonly report: OptimizeReport;
  /** @internal The latest forward's run time inside libtorch (the clock compareGraphs reads), for bench. */
  _lastRunMs = NaN;

  /** @internal Made by optimize(). */
  constructor(module: Module, portable: Graph, runBase: Graph, packed: ReadonlyMap<string, PackedWeight>,
    signature: readonly ArgumentInfo[], metadata: OptimizedMetadata, report: OptimizeReport, inPlace: boolean) {
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
  _plan(specs: readonly InputSpec[], key: string, shapesKnown = false): Promise<NativeGraph> {
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
    made.then(() => {
      this.report.timings[`plan ${key}`] = performance.now() - t0;
    }, () => {
      if (this.#plans.get(key) === made) this.#plans.delete(key);
    });
    while (this.#plans.size > MAX_PLANS) {
      const [oldest, p] = this.#plans.entries().next().value as [string, Promise<NativeGraph>];
      this.#plans.delete(oldest);
      this.#drop(p);
    }
    return made;
  }

  #drop(plan: Promise<NativeGraph>): void {
    if (this.#running.has(plan)) this.#dropped.add(plan);
    else plan.then((g) => g.dispose(), () => {});
  }

  #finished(plan: Promise<NativeGraph>): void {
    const left = (this.#running.get(plan) ?? 1) - 1;
    if (left > 0) return void this.#running.set(plan, left);
    this.#running.delete(plan);
    if (this.#dropped.delete(plan)) plan.then((g) => g.dispose(), () => {});
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
    const named = inputs.length === 1 && v !== null && typeof v === 'object' && !Array.isArray(v)
      && !(v instanceof Tensor) && Object.getPrototypeOf(v) === Object.prototype;
    const nativeByName = () => Object.fromEntries(Object.entries(v as Record<string, Value>).map(([k, x]) => [k, toNativeValue(x)]));
    const args = named
      ? resolveNamedArguments(this.#signature, nativeByName())
      : resolveArguments(this.#signature, (inputs as Value[]).map(toNativeValue));
    if (args.length > this.#signature.length) {
      const names = this.#signature.map((a) => a.name).join(', ');
      throw new TorchGraphError('ERR_INVALID_ARG', `forward takes ${this.#signature.length} inputs (${names}), ${args.length} given`);
    }
    this.#checkInputs(args);
    const key = planKey(args);
    // Counted before the first await, so a plan dropped meanwhile by another call stays until this one is done.
    const plan = this.#plans.get(key) ? this._plan([], key) : this._plan(this.#specsOf(args), key);
    this.#running.set(plan, (this.#running.get(plan) ?? 0) + 1);
    try {
      const run = await plan;
      const r = await native(() => run.run(args));
      this._lastRunMs = r.ms;
      return fromNativeValue(r.output) as T;
    } finally {
      this.#finished(plan);
    }
  }

  #specsOf(args: readonly unknown[]): InputSpec[] {
    return args.flatMap((a) => (isTensorArg(a) ? [{ shape: [...a.shape], dtype: a.dtype }] : []));
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
      if (t.dtype !== spec.dtype) {
        throw new TorchGraphError('ERR_INVALID_ARG', `forward: ${name} is ${t.dtype}, the model was optimized for ${spec.dtype}`);
      }
      if (t.shape.length !== spec.shape.length) {
        throw new TorchGraphError('ERR_INVALID_ARG', `forward: ${name} has rank ${t.shape.length} ([${t.shape.join(', ')}]), `
          + `the model was optimized for rank ${spec.shape.length} ([${spec.shape.join(', ')}])`);
      }
      if (t.device !== this.device) {
        throw new TorchGraphError('ERR_INVALID_ARG', `forward: ${name} is on ${t.device}, the model on ${this.device}`);
      }
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
    if (options === null || typeof options !== 'object') {
      throw new TorchGraphError('ERR_INVALID_ARG', 'save(path, options): options must be an object');
    }
    const file = checkTarget(path, options.overwrite === true);
    const program = file.endsWith('.pt2');
    const writer = program ? programWriter() : undefined;
    const plain = await this.#plainWeights();
    try {
      // Activations in place are so at any shape (adds are not: an operand may broadcast at others).
      const portable = this.#portable.clone();
      if (this.#inPlace) inPlaceWhereInputsDie(portable, { adds: false });
      if (!writer) return await saveTorchScript(file, portable, plain, this.#metadata, this.device, this.#signature);
      // torch.export programs are written by the resolved Python torch from a TorchScript file.
      const stem = nodePath.basename(file, '.pt2');
      await writeBeside(file, async (tmp) => {
        const ts = nodePath.join(nodePath.dirname(tmp), `${stem}.ts.pt`);
        await saveTorchScript(ts, portable, plain, this.#metadata, this.device, this.#signature);
        await writer(ts, tmp, this.#metadata.plannedFor, JSON.stringify(this.#metadata));
      });
    } finally {
      for (const t of plain.values()) t.dispose();
    }
  }

  /** Every weight the portable graph reads, packed ones turned back into plain tensors (copies, freed after saving). */
  async #plainWeights(): Promise<Map<string, NativeTensor>> {
    const self = moduleSelf(this.#portable)!;
    const names = [...new Set(self.users().map((u) => String(u.attr('name'))))];
    const reads = names.map((n) => self.users().find((u) => String(u.attr('name')) === n)!.output);
    const tensors = await computeOnModule(this.#module._native, this.#portable, reads, (g, map) => names.map((n, i) => {
      const read = map.get(reads[i])!;
      const p = this.#packed.get(n);
      if (!p?.inPlace) return read;
      const T = [{ kind: 'Tensor' as const }];
      const ints = (xs: number[]) => g.createNode('prim::ListConstruct', xs.map((d) => g.insertConstant(BigInt(d))),
        [{ kind: 'List', elem: { kind: 'Int' } }]).output;
      const dense = p.format === 'torchgraph-linear'
        ? g.createNode(UNPACK_LINEAR_KIND, [read, g.insertConstant(BigInt(p.outFeatures!))], T).output
        : p.format === 'torchgraph-conv2d'
          ? g.createNode(UNPACK_CONV2D_KIND, [read, ints(p.weightSize!)], T, {}, { schema: OWN_OP_SCHEMAS[UNPACK_CONV2D_KIND] }).output
          : g.createNode('aten::to_dense', [read, g.insertConstant(null), g.insertConstant(null)], T).output;
      // A linear's weight read transposed (an addmm's (in, out) mat2) was packed as W.
      return p.transposed ? g.createNode('aten::t', [dense], [{ kind: 'Tensor' }]).output : dense;
    }));
    return new Map(names.map((n, i) => [n, tensors[i]]));
  }

  dispose(): void {
    for (const p of this.#plans.values()) this.#drop(p);
    this.#plans.clear();
    this.#module.dispose();
  }
}

/** Whether an argument is a tensor (anything with a shape and a dtype). */
function isTensorArg(a: unknown): a is NativeTensor {
  return a !== null && typeof a === 'object' && 'shape' in a && 'dtype' in a;
}

/** A plan's key: the tensor arguments' shapes and dtypes. */
function planKey(args: readonly unknown[]): string {
  return args.map((a) => (isTensorArg(a) ? `${a.shape.join('x')}:${a.dtype}` : typeof a)).join(',');
}

/**
 * The fused model of `module` for inputs like `inputs`, as a model of its own. optimize takes the
 * module over: it is disposed once its weights have moved (the tensors the fused graph does not
 * read are freed then), so use the returned model, not `module`, afterwards; if optimize fails
 * before that, `module` is as it was. A file saved by OptimizedModel.save() is only prepacked again.
 */
export async function optimize(module: Module, inputs: readonly InputSpec[], options: OptimizeOptions = {}): Promise<OptimizedModel> {
  if (!(module instanceof Module)) throw new TorchGraphError('ERR_INVALID_ARG', 'optimize(module, inputs): module must be a loaded Module');
  if (!Array.isArray(inputs)) {
    throw new TorchGraphError('ERR_INVALID_ARG', 'optimize(module, inputs): inputs must be an array of { shape, dtype } specs');
  }
  if (options === null || typeof options !== 'object') {
    throw new TorchGraphError('ERR_INVALID_ARG', 'optimize(module, inputs, options): options must be an object');
  }
  if (module.disposed) throw new TorchGraphError('ERR_DISPOSED', 'optimize: the module was disposed');
  module._checkInputShapes(inputs.map((s) => s?.shape));
  const t0 = performance.now();
  const originalMs = await timeOriginalBeforeRewrite(module, inputs, options);
  const originalTimed = performance.now() - t0;
  const r = options.worker === false
    ? await rewriteModel(module, inputs, options, MAX_PLANS, originalMs ? { originalMs } : undefined)
    : await rewriteInWorker(module, inputs, options, MAX_PLANS, originalMs);
  if (originalMs) r.report.timings['time the original'] = originalTimed;
  r.report.timings.rewrite = performance.now() - t0;
  const model = new OptimizedModel(r.module, r.portable, r.run, r.packed, r.signature, r.metadata, r.report, r.inPlace);
  try {
    const t1 = performance.now();
    await model._plan(inputs, planKey(inputs.map((s) => ({ shape: s.shape, dtype: s.dtype }))), true);
    r.report.timings.plan = performance.now() - t1;
  } catch (e) {
    model.dispose();
    throw e;
  }
  // The plain weights, the decomposition's graphs and shape runs are gone: their heap goes back.
  releaseFreedMemory();
  return model;
}
