// Decompose every attention in a graph into explicit aten ops, in place. Attention hides as:
//   - call_module of nn.MultiheadAttention (prim::CallMethod in the standard view),
//   - aten::_native_multi_head_attention (the no_grad fast path recorded by tracing),
//   - aten::_transformer_encoder_layer_fwd (nn.TransformerEncoderLayer's fast path),
//   - aten::scaled_dot_product_attention (left by slow-path traces).
// Weights are read from the model's own parameters (packed q/k/v are row-slice views), so
// the model is unchanged and nothing is copied. What cannot be decomposed exactly is left
// intact and reported with the reason.
import type { ModuleTreeData } from '../torchscript/binding';
import type { Graph, GraphData, Node, Value, TypeData, ScopeFrame } from '../core/ir';
import { Graph as GraphClass } from '../core/ir';
import { Emitter } from './emit';
import { boolArg, constBool, constFloat, constInt, maskOf, rankOf, Skip } from './attention-arguments';
import { emitMultiheadAttention, emitSdpa, type MaskInput, type MhaMath, type InProjection } from './attention-math';
import { inlineCall } from './inline-modules';
import { modulePaths, moduleCallOf } from './module-calls';
import { DECOMPOSED_ATTENTION_KINDS } from '../core/ops/classes';
import { shortClassName } from '../core/ir/types';
import { setValueInfo, tensorInfo, valueInfo } from '../core/value-info';
import { constantOf, isNoneValue } from '../core/constants';

export type AttentionForm = 'module' | 'native_mha' | 'encoder_layer' | 'sdpa';

export interface AttentionRecord {
  id: string;
  form: AttentionForm;
  node: string;
  /** Explicit aten ops emitted for it (constants and list builders not counted). */
  opsExposed: number;
  numHeads?: number;
  embedDim?: number;
  batchFirst?: boolean;
}

export interface DecomposeReport {
  found: number;
  decomposed: AttentionRecord[];
  skipped: { node: string; form: AttentionForm; reason: string }[];
  ms: number;
}

export interface DecomposeOptions {
  /** The module tree (attributes of scripted modules, parameter presence). */
  tree: ModuleTreeData;
  /** Attentions already explicit in inlined module bodies (from inlineAttentionModuleCalls). */
  explicitBodies?: AttentionRecord[];
}

function isMhaClass(cls: string): boolean { return shortClassName(cls) === 'MultiheadAttention'; }
function isEncoderLayerClass(cls: string): boolean { return shortClassName(cls) === 'TransformerEncoderLayer'; }

function subtree(tree: ModuleTreeData, path: string): ModuleTreeData | undefined {
  if (!path) return tree;
  let m: ModuleTreeData | undefined = tree;
  for (const part of path.split('.')) m = m?.children.find((c) => c.name === part);
  return m;
}

/** Replace `from` by `to`, carrying over what shape propagation knew (same value, new spelling). */
function replaceValue(from: Value, to: Value): void {
  const info = valueInfo(from);
  if (info && !valueInfo(to)) setValueInfo(to, info);
  from.replaceAllUsesWith(to);
}

function containsAttention(m: ModuleTreeData): boolean {
  return m.children.some((c) => isMhaClass(c.type) || isEncoderLayerClass(c.type) || containsAttention(c));
}

function countOps(nodes: Node[]): number {
  return nodes.filter((n) => n.kind.startsWith('aten::') && !n.isDestroyed).length;
}

/** Replace uses of a tuple built by prim::TupleConstruct that are unpacked or indexed by constants. */
function forwardTuple(tuple: Value, items: Value[]): void {
  for (const user of tuple.users()) {
    if (user.kind === 'prim::TupleUnpack') {
      user.outputs.forEach((o, i) => replaceValue(o, items[i]));
      user.destroy();
    } else if (user.kind === 'prim::TupleIndex') {
      const idx = constantOf(user.inputs[1]);
      if (typeof idx === 'bigint') {
        replaceValue(user.output, items[Number(idx)]);
        user.destroy();
      }
    }
  }
}

// ---------------------------------------------------------------- nn.MultiheadAttention

/** Scripted modules keep their attributes: build the math from them and the call's arguments. */
function decomposeScriptedMhaCall(g: Graph, call: Node, path: string, m: ModuleTreeData, scope: ScopeFrame[]): AttentionRecord {
  const a = m.attributes;
  const need = (name: string) => {
    if (!(name in a)) throw new Skip(`module attribute '${name}' is not available (traced module; no body to expand)`);
    return a[name];
  };
  const E = Number(need('embed_dim'));
  const H = Number(need('num_heads'));
  const batchFirst = Boolean(need('batch_first'));
  const sameDim = Boolean(need('_qkv_same_embed_dim'));
  const addZeroAttn = Boolean(need('add_zero_attn'));
  const dropout = Number(need('dropout'));
  const params = new Set(m.parameters.map((p) => p.name));
  // forward(self, query, key, value, key_padding_mask, need_weights, attn_mask, average_attn_weights, is_causal)
  const [self, query, key, value, kpmArg, needWeightsArg, attnMaskArg, avgArg, causalArg] = call.inputs;
  if (call.inputs.length !== 9) throw new Skip(`unexpected MultiheadAttention.forward signature (${call.inputs.length} arguments)`);
  const needWeights = constBool(needWeightsArg, 'need_weights');
  const averageWeights = constBool(avgArg, 'average_attn_weights');
  const attnMask = maskOf(attnMaskArg, 'attn_mask');
  const keyPaddingMask = maskOf(kpmArg, 'key_padding_mask');
  // Without attn_mask, PyTorch raises when is_causal is set; a run-time flag can only be false then.
  const isCausal = isNoneValue(causalArg) ? false : boolArg(causalArg, 'is_causal');
  if (isCausal === true && !attnMask) throw new Skip('is_causal without attn_mask (PyTorch raises here)');
  const rank = rankOf(query, 'query');

  const em = new Emitter(g, call, { id: path, scope });
  em.role = 'params';
  const outProj = m.children.find((c) => c.name === 'out_proj');
  if (!outProj) throw new Skip('no out_proj submodule');
  const outMod = em.getAttr(self, 'out_proj', { kind: 'Class', name: outProj.type });
  const inBias = params.has('in_proj_bias') ? em.getAttr(self, 'in_proj_bias') : null;
  const inProj: InProjection = sameDim
    ? { packed: true, weight: em.getAttr(self, 'in_proj_weight'), bias: inBias }
    : {
        packed: false, q: em.getAttr(self, 'q_proj_weight'), k: em.getAttr(self, 'k_proj_weight'), v: em.getAttr(self, 'v_proj_weight'),
        bias: inBias,
      };
  const cfg: MhaMath = {
    embedDim: E, numHeads: H, batchFirst, batched: rank === 3, inProj,
    outWeight: em.getAttr(outMod, 'weight'),
    outBias: outProj.parameters.some((p) => p.name === 'bias') ? em.getAttr(outMod, 'bias') : null,
    biasK: params.has('bias_k') ? em.getAttr(self, 'bias_k') : undefined,
    biasV: params.has('bias_v') ? em.getAttr(self, 'bias_v') : undefined,
    addZeroAttn, dropout, training: Boolean(a.training),
    attnMask, keyPaddingMask, isCausal, needWeights, averageWeights,
  };
  const { out, weights } = emitMultiheadAttention(em, cfg, query, key, value);
  em.role = 'output';
  const tupleType: TypeData = call.output.type;
  const tuple = em.tuple([out, weights ?? em.none()], tupleType);
  call.output.replaceAllUsesWith(tuple);
  call.destroy();
  forwardTuple(tuple, [out, weights ?? tuple]);
  return {
    id: path, form: 'module', node: `prim::CallMethod ${path}`, opsExposed: countOps(em.emitted), numHeads: H, embedDim: E, batchFirst,
  };
}

/** Traced modules lose their attributes; their body holds the op-level form, so inline it. */
function inlineCallBody(g: Graph, call: Node, path: string, method: string, graph: GraphData, scope: ScopeFrame[]): Node[] {
  const copied = inlineCall(call, GraphClass.fromData(graph), call.inputs, scope, path);
  for (const c of copied) c.meta.attention = { id: path, role: 'body' };
  return copied;
}

// ------------------------------------------------------------------ op-level forms

function attentionId(n: Node): string {
  return n.modulePath || n.describe();
}

/**
 * The attention module a site belongs to: a scripted layer holds both PyTorch's fast path and
 * its slow path, so one attention can be two sites. An encoder layer's fast path
 * (_transformer_encoder_layer_fwd, called in the layer) stands for its `self_attn`.
 */
export function attentionModuleOf(form: AttentionForm, id: string): string {
  return form === 'encoder_layer' ? `${id}.self_attn` : id;
}

/** The math of the fused kernels (native MHA, encoder layer): packed weights, batch first, masked_softmax masks. */
interface FusedKernelArgs {
  E: number; H: number; rank: number; qkvW: Value; qkvB: Value; projW: Value; projB: Value;
  mask?: MaskInput; maskType?: number; needWeights: boolean; averageWeights: boolean;
}

function fusedKernelMath(o: FusedKernelArgs): MhaMath {
  return {
    embedDim: o.E, numHeads: o.H, batchFirst: true, batched: o.rank === 3,
    inProj: { packed: true, weight: o.qkvW, bias: isNoneValue(o.qkvB) ? null : o.qkvB },
    outWeight: o.projW, outBias: isNoneValue(o.projB) ? null : o.projB,
    addZeroAttn: false, dropout: 0, training: false,
    attnMask: o.mask && o.maskType !== 1 ? o.mask : undefined,
    keyPaddingMask: o.mask && o.maskType === 1 ? o.mask : undefined,
    isCausal: false, needWeights: o.needWeights, averageWeights: o.averageWeights,
    floatMaskIsBoolean: true, nativeMaskType: o.maskType,
  };
}

/** The input bound to the schema argument `name` (core/ops/registry.ts), or a Skip saying it is missing. */
function argOf(n: Node, name: string): Value {
  const v = n.arg(name);
  if (!v) throw new Skip(`no argument '${name}' in ${n.schema ?? n.kind}`);
  return v;
}

/** aten::_native_multi_head_attention, its arguments read by name. */
function decomposeNativeMha(g: Graph, n: Node): AttentionRecord {
  const arg = (name: string) => argOf(n, name);
  const [query, key, value] = [arg('query'), arg('key'), arg('value')];
  const [qkvW, qkvB, projW, projB] = [arg('qkv_weight'), arg('qkv_bias'), arg('proj_weight'), arg('proj_bias')];
  const E = constInt(arg('embed_dim'), 'embed_dim');
  const H = constInt(arg('num_head'), 'num_head');
  const needWeights = constBool(arg('need_weights'), 'need_weights');
  const averageWeights = constBool(arg('average_attn_weights'), 'average_attn_weights');
  const mask = maskOf(arg('mask'), 'mask');
  const maskType = mask ? constInt(arg('mask_type'), 'mask_type') : undefined;
  if (!needWeights && n.outputs[1].hasUses()) throw new Skip('attention weights are used but need_weights is false');
  const rank = rankOf(query, 'query');
  const id = attentionId(n);
  const em = new Emitter(g, n, { id, scope: n.scope });
  const cfg = fusedKernelMath({ E, H, rank, qkvW, qkvB, projW, projB, mask, maskType, needWeights, averageWeights });
  const { out, weights } = emitMultiheadAttention(em, cfg, query, key, value);
  replaceValue(n.outputs[0], out);
  if (weights) replaceValue(n.outputs[1], weights);
  n.destroy();
  return {
    id, form: 'native_mha', node: 'aten::_native_multi_head_attention', opsExposed: countOps(em.emitted),
    numHeads: H, embedDim: E, batchFirst: true,
  };
}

/** aten::_transformer_encoder_layer_fwd (a whole nn.TransformerEncoderLayer), its arguments read by name. */
function decomposeEncoderLayer(g: Graph, n: Node): AttentionRecord {
  const arg = (name: string) => argOf(n, name);
  const src = arg('src');
  const [qkvW, qkvB, projW, projB] = [arg('qkv_weight'), arg('qkv_bias'), arg('proj_weight'), arg('proj_bias')];
  const [nw1, nb1, nw2, nb2] = [arg('norm_weight_1'), arg('norm_bias_1'), arg('norm_weight_2'), arg('norm_bias_2')];
  const [fw1, fb1, fw2, fb2] = [arg('ffn_weight_1'), arg('ffn_bias_1'), arg('ffn_weight_2'), arg('ffn_bias_2')];
  const eps = arg('eps');
  const E = constInt(arg('embed_dim'), 'embed_dim');
  const H = constInt(arg('num_heads'), 'num_heads');
  const useGelu = constBool(arg('use_gelu'), 'use_gelu');
  const normFirst = constBool(arg('norm_first'), 'norm_first');
  const mask = maskOf(arg('mask'), 'mask');
  const maskType = mask ? constInt(arg('mask_type'), 'mask_type') : undefined;
  const rank = rankOf(src, 'src');
  const id = attentionId(n);
  const em = new Emitter(g, n, { id, scope: n.scope });
  const cfg = fusedKernelMath({ E, H, rank, qkvW, qkvB, projW, projB, mask, maskType, needWeights: false, averageWeights: false });
  const attention = (x: Value) => emitMultiheadAttention(em, cfg, x, x, x).out;
  const ffn = (x: Value) => {
    em.role = 'ffn';
    const h = em.linear(x, fw1, fb1);
    return em.linear(useGelu ? em.gelu(h) : em.relu(h), fw2, fb2);
  };
  const norm = (x: Value, w: Value, b: Value) => { em.role = 'norm'; return em.layerNorm(x, E, w, b, eps); };
  const residual = (a: Value, b: Value) => { em.role = 'residual'; return em.add(a, b); };
  let x: Value;
  if (normFirst) {
    x = residual(src, attention(norm(src, nw1, nb1)));
    x = residual(x, ffn(norm(x, nw2, nb2)));
  } else {
    x = norm(residual(src, attention(src)), nw1, nb1);
    x = norm(residual(x, ffn(x)), nw2, nb2);
  }
  replaceValue(n.output, x);
  n.destroy();
  return {
    id, form: 'encoder_layer', node: 'aten::_transformer_encoder_layer_fwd', opsExposed: countOps(em.emitted),
    numHeads: H, embedDim: E, batchFirst: true,
  };
}

/** aten::scaled_dot_product_attention, its arguments read by name (lib/core/ops/registry.ts). */
function decomposeSdpa(g: Graph, n: Node): AttentionRecord {
  const arg = (name: string) => argOf(n, name);
  const [q, k, v] = [arg('query'), arg('key'), arg('value')];
  const dropout = constFloat(arg('dropout_p'), 'dropout_p');
  const scaleArg = n.arg('scale');
  const scale = scaleArg && !isNoneValue(scaleArg) ? constFloat(scaleArg, 'scale') : null;
  const gqaArg = n.arg('enable_gqa');
  const gqa = gqaArg !== undefined && !isNoneValue(gqaArg) && constBool(gqaArg, 'enable_gqa');
  const mask = maskOf(arg('attn_mask'), 'attn_mask');
  const isCausal = boolArg(arg('is_causal'), 'is_causal');
  const qi = tensorInfo(q);
  if (!qi) throw new Skip('query shape is unknown (run shape propagation before decomposing)');
  const id = attentionId(n);
  const em = new Emitter(g, n, { id, scope: n.scope });
  // enable_gqa: K and V have fewer heads (dim -3) than Q; PyTorch's math repeats each one
  // Hq / Hkv times in place (repeat_interleave), which is what is emitted.
  const repeatHeads = (t: Value, what: string): Value => {
    if (!gqa) return t;
    const ti = tensorInfo(t);
    if (!ti || ti.shape.length < 3 || qi.shape.length < 3) throw new Skip(`${what} shape is unknown or below rank 3 with enable_gqa`);
    const hq = qi.shape[qi.shape.length - 3], hkv = ti.shape[ti.shape.length - 3];
    if (hq % hkv !== 0) throw new Skip(`enable_gqa with ${hq} query heads and ${hkv} ${what} heads (not a multiple)`);
    if (hq === hkv) return t;
    em.role = 'repeat_kv';
    return em.op('aten::repeat_interleave', t, em.int(hq / hkv), em.int(-3), em.none());
  };
  const out = emitSdpa(em, q, repeatHeads(k, 'key'), repeatHeads(v, 'value'), {
    mask: mask ? { value: mask.value, dtype: mask.dtype } : undefined, dropout, isCausal, scale, headDim: qi.shape[qi.shape.length - 1],
  });
  replaceValue(n.output, out);
  n.destroy();
  return { id, form: 'sdpa', node: 'aten::scaled_dot_product_attention', opsExposed: countOps(em.emitted) };
}

// ------------------------------------------------------------------------- driver

/**
 * Traced nn.MultiheadAttention / nn.TransformerEncoderLayer calls lose the module's
 * attributes; their bodies hold the op-level form (fast-path op or slow-path ops with SDPA),
 * so inline the bodies. Scripted MHA calls are left for decomposeAttention (their bodies are
 * all run-time branches). Shapes must be propagated again afterwards. Returns the count.
 */
/** Traced modules keep only `training` and forward; scripted ones keep attributes and every method. */
export function isScriptedModule(m: ModuleTreeData): boolean {
  return m.methods.length > 1 || Object.keys(m.attributes).some((k) => k !== 'training' && k !== '_is_full_backward_hook');
}

export function inlineAttentionModuleCalls(g: Graph, tree: ModuleTreeData,
  fetch: (path: string, method: string, inline: boolean) => GraphData): { inlined: number; explicitBodies: AttentionRecord[] } {
  let inlined = 0;
  const explicitBodies: AttentionRecord[] = [];
  for (;;) {
    const paths = modulePaths(g);
    const call = g.allNodes().map((n) => moduleCallOf(n, paths)).find((c) => {
      if (!c) return false;
      const m = subtree(tree, c.path);
      // Scripted attention's forward is built from attributes; its helper methods (merge_masks) are plain code.
      if (isMhaClass(c.cls)) return c.method !== 'forward' || !(m !== undefined && 'num_heads' in m.attributes);
      // Encoder layers, and leaf modules that hold attention (nn.TransformerEncoder, nn.Transformer, ...).
      return isEncoderLayerClass(c.cls) || (m !== undefined && containsAttention(m));
    });
    if (!call) return { inlined, explicitBodies };
    const frame: ScopeFrame = { path: call.path, cls: call.cls, method: call.method };
    // Traced bodies are inlined whole; scripted ones one level at a time, so that the
    // attention modules inside stay calls that decomposeAttention builds from attributes.
    const m = subtree(tree, call.path);
    const scripted = m !== undefined && isScriptedModule(m);
    const body = inlineCallBody(g, call.node, call.path, call.method, fetch(call.path, call.method, !scripted),
      [...(call.node.scope ?? []), frame]);
    inlined++;
    // A body with no attention op already spells attention out (the need_weights slow path).
    if (isMhaClass(call.cls) && call.method === 'forward' && !body.some((n) => DECOMPOSED_ATTENTION_KINDS.has(n.kind))) {
      explicitBodies.push({ id: call.path, form: 'module', node: `prim::CallMethod ${call.path}`, opsExposed: countOps(body) });
    }
  }
}

function formOf(n: Node): AttentionForm | undefined {
  if (n.kind === 'aten::_native_multi_head_attention') return 'native_mha';
  if (n.kind === 'aten::_transformer_encoder_layer_fwd') return 'encoder_layer';
  if (n.kind === 'aten::scaled_dot_product_attention') return 'sdpa';
  return undefined;
}

/** Every attention op of the four kinds left in a graph (for checks). */
export function remainingAttentionOps(g: Graph): Node[] {
  const paths = modulePaths(g);
  return g.allNodes().filter((n) => {
    if (DECOMPOSED_ATTENTION_KINDS.has(n.kind)) return true;
    const call = moduleCallOf(n, paths);
    return call !== undefined && call.method === 'forward' && (isMhaClass(call.cls) || isEncoderLayerClass(call.cls));
  });
}

export function decomposeAttention(g: Graph, options: DecomposeOptions): DecomposeReport {
  const t0 = performance.now();
  const bodies = options.explicitBodies ?? [];
  const report: DecomposeReport = { found: bodies.length, decomposed: [...bodies], skipped: [], ms: 0 };
  const skippedNodes = new Set<Node>();

  // Scripted nn.MultiheadAttention calls: built from the module's attributes.
  for (;;) {
    const paths = modulePaths(g);
    const call = g.allNodes().map((n) => moduleCallOf(n, paths))
      .find((c) => c && !skippedNodes.has(c.node) && c.method === 'forward' && (isMhaClass(c.cls) || isEncoderLayerClass(c.cls)));
    if (!call) break;
    const frame: ScopeFrame = { path: call.path, cls: call.cls, method: call.method };
    const scope = [...(call.node.scope ?? []), frame];
    const m = subtree(options.tree, call.path);
    const describe = `prim::CallMethod ${call.path} (${shortClassName(call.cls)})`;
    report.found++;
    try {
      if (!m) throw new Skip(`no module at path '${call.path}'`);
      if (!isMhaClass(call.cls) || !('num_heads' in m.attributes)) {
        throw new Skip('module attributes are not recorded (traced module): expand its body first with inlineAttentionModuleCalls');
      }
      report.decomposed.push(decomposeScriptedMhaCall(g, call.node, call.path, m, scope));
    } catch (e) {
      if (!(e instanceof Skip)) throw e;
      skippedNodes.add(call.node);
      report.skipped.push({ node: describe, form: 'module', reason: e.message });
    }
  }

  for (;;) {
    const n = g.allNodes().find((x) => formOf(x) && !skippedNodes.has(x));
    if (!n) break;
    const form = formOf(n)!;
    report.found++;
    try {
      const rec = form === 'native_mha' ? decomposeNativeMha(g, n)
        : form === 'encoder_layer' ? decomposeEncoderLayer(g, n)
        : decomposeSdpa(g, n);
      report.decomposed.push(rec);
    } catch (e) {
      if (!(e instanceof Skip)) throw e;
      skippedNodes.add(n);
      report.skipped.push({ node: `${n.kind} ${attentionId(n)}`, form, reason: e.message });
    }
  }
  g.eliminateDeadCode();
  // Ops exposed per attention: everything tagged with its id (an inlined body plus what its
  // op-level form expanded into).
  const byId = new Map<string, number>();
  for (const n of g.allNodes()) {
    const tag = n.meta.attention as { id: string } | undefined;
    if (tag && n.kind.startsWith('aten::')) byId.set(tag.id, (byId.get(tag.id) ?? 0) + 1);
  }
  for (const r of report.decomposed) r.opsExposed = byId.get(r.id) ?? r.opsExposed;
  report.ms = performance.now() - t0;
  return report;
}
