// readAttentionCore (lib/fusion/attention-core.ts) and lowerAttentionCore (lib/fusion/lower-fused.ts)
// on hand-built cores (no libtorch): what the reading finds, what it refuses and why, and the
// aten::scaled_dot_product_attention the lowering emits (or the graph left as it was).
import { strict as assert } from 'assert';
import { FloatType, type Node, type Value } from '../../lib/core/ir';
import { constOf } from '../../lib/core/constants';
import { readAttentionCore, type AttentionCore, type CoreReading } from '../../lib/fusion/attention-core';
import { lowerAttentionCore } from '../../lib/fusion/lower-fused';
import { GB } from '../support/graph-builder';

const [B, H, L, D] = [2, 2, 4, 8];
const SCALE = 1 / Math.sqrt(D);

/** A core under construction: q, k, v of (B, H, L, D), and each node's role as the partitioner's attention rule gives it. */
class Core {
  readonly b = new GB();
  readonly roles = new Map<Node, string>();
  readonly q = this.b.input('q', [B, H, L, D]);
  readonly k = this.b.input('k', [B, H, L, D]);
  readonly v = this.b.input('v', [B, H, L, D]);
  softmax?: Node;
  context?: Node;

  as<T extends Value>(role: string, v: T): T { this.roles.set(v.node!, role); return v; }
  scores(q: Value = this.q, kT: Value = this.b.transpose(this.k, -2, -1)): Value { return this.as('scores', this.b.matmul(q, kT)); }
  /** softmax -> [dropout] -> @ v; the context is a graph output. */
  finish(s: Value, o: { dropout?: [number, boolean]; softmaxDtype?: number } = {}): Value {
    const p = this.as('softmax', this.b.unary('aten::softmax', s, this.b.int(-1), o.softmaxDtype === undefined ? this.b.none() : this.b.int(o.softmaxDtype)));
    this.softmax = p.node!;
    const w = o.dropout ? this.as('dropout', this.b.dropout(p, ...o.dropout)) : p;
    const c = this.as('context', this.b.matmul(w, this.v));
    this.context = c.node!;
    this.b.out(c);
    return c;
  }
  read(): CoreReading { return readAttentionCore([...this.roles.keys()], [...this.roles.values()]); }
  core(): AttentionCore {
    const r = this.read();
    if (!r.ok) assert.fail(`refused: ${r.reason}`);
    return r.core;
  }
  refusal(): string {
    const r = this.read();
    assert.equal(r.ok, false, 'the core should be refused');
    return (r as { reason: string }).reason;
  }
}

const SPACE = [B, H, L, L];
/** Values by name: a failed deepEqual over graph values would print the whole graph. */
const names = (vs: (Value | undefined)[]) => vs.map((v) => v?.debugName);
/** Identity of graph objects (assert.equal would print the whole graph on a failure). */
const same = (a: unknown, b: unknown, what: string) => assert.ok(a === b, what);
const plain = (masks: AttentionCore['masks']) => masks.map((m) => ({ ...m, value: m.value.debugName }));

describe('readAttentionCore', () => {
  it('q @ k^T / sqrt(d) + additive mask -> softmax -> dropout -> @ v', () => {
    const c = new Core();
    const mask = c.b.input('mask', [B, 1, 1, L]);
    const s = c.as('mask', c.b.add(c.as('scale', c.b.divScalar(c.scores(), Math.sqrt(D))), mask));
    c.finish(s, { dropout: [0.1, true] });
    const core = c.core();
    same(core.q, c.q, 'q');
    same(core.k, c.k, 'k recovered from its transpose');
    assert.equal(core.kT, undefined);
    same(core.v, c.v, 'v');
    assert.ok(Math.abs(core.scale - SCALE) < 1e-12, `scale ${core.scale}`);
    assert.deepEqual(core.runtimeScales, []);
    // Applied after the scale: SDPA adds it as it is.
    assert.deepEqual(plain(core.masks), [{ value: mask.debugName, form: 'additive', factor: 1, runtime: [], space: SPACE }]);
    assert.equal(core.dropout, 0.1);
    assert.deepEqual(core.scoresShape, SPACE);
    same(core.softmax, c.softmax, 'the softmax');
    same(core.context, c.context, 'the context matmul');
  });

  it('a mask added before the scale carries the scale as its factor; scales on q and on the scores multiply; eval dropout is 0', () => {
    const c = new Core();
    const mask = c.b.input('mask', [B, 1, L, L]);
    const q = c.as('scale', c.b.mulScalar(c.q, 0.5));
    const s = c.as('scale', c.b.mulScalar(c.as('mask', c.b.add(c.scores(q), mask)), 0.25));
    c.finish(s, { dropout: [0.1, false] });
    const core = c.core();
    same(core.q, c.q, 'q before its scale');
    assert.equal(core.scale, 0.125);
    assert.deepEqual(plain(core.masks), [{ value: mask.debugName, form: 'additive', factor: 0.25, runtime: [], space: SPACE }]);
    assert.equal(core.dropout, 0);
  });

  it('k^T that is not a transpose is read as kT; a scale known only at run time is a runtime scale', () => {
    const c = new Core();
    const kT = c.b.input('kT', [B, H, D, L]);
    const t = c.b.g.addInput(FloatType, 'temperature');
    const s = c.as('scale', c.b.fresh('aten::div', [c.scores(c.q, kT), t], SPACE));
    c.finish(s);
    const core = c.core();
    assert.equal(core.k, undefined);
    same(core.kT, kT, 'kT');
    assert.equal(core.scale, 1);
    assert.deepEqual(core.runtimeScales.map((r) => ({ ...r, value: r.value.debugName })), [{ value: 'temperature', divide: true }]);
  });

  it('bool masks: masked_fill with -inf, where(keep, scores, -inf) (negated), a causal triu buffer, a huge-negative fill', () => {
    const c = new Core();
    const pad = c.b.input('pad', [B, 1, 1, L], 'bool');
    const keep = c.b.input('keep', [B, 1, L, L], 'bool');
    const hidden = c.b.input('hidden', [B, 1, 1, L], 'bool');
    const causal = c.b.causalMask(L);
    let s = c.scores();
    s = c.as('mask', c.b.maskedFill(s, pad, -Infinity));
    s = c.as('mask', c.b.where(keep, s, -Infinity));
    s = c.as('mask', c.b.maskedFill(s, causal, -Infinity));
    s = c.as('mask', c.b.maskedFill(s, hidden, -3.4028234663852886e38));
    c.finish(s);
    // Read from softmax backwards: the last mask applied comes first.
    assert.deepEqual(plain(c.core().masks), [
      { value: hidden.debugName, form: 'fill', fill: -3.4028234663852886e38, factor: 1, runtime: [], space: SPACE },
      { value: causal.debugName, form: 'bool', causal: true, factor: 1, runtime: [], space: SPACE },
      { value: keep.debugName, form: 'bool', negate: true, factor: 1, runtime: [], space: SPACE },
      { value: pad.debugName, form: 'bool', factor: 1, runtime: [], space: SPACE },
    ]);
  });

  it('a subtracted mask is additive and subtracted', () => {
    const c = new Core();
    const mask = c.b.input('mask', [B, 1, 1, L]);
    c.finish(c.as('mask', c.b.sub(c.scores(), mask)));
    assert.deepEqual(plain(c.core().masks), [{ value: mask.debugName, form: 'additive', subtracted: true, factor: 1, runtime: [], space: SPACE }]);
  });

  describe('refusals, with the reason', () => {
    const label = (v: Value) => `${v.node!.kind} -> %${v.debugName}`;

    it('no softmax in the group', () => {
      const c = new Core();
      c.scores();
      assert.deepEqual({ ...c.read() }, { ok: false, reason: 'no softmax in the group', node: undefined });
    });

    it('a softmax that casts to another dtype', () => {
      const c = new Core();
      c.finish(c.scores(), { softmaxDtype: 5 });
      const r = c.read();
      assert.equal(r.ok, false);
      assert.equal((r as { reason: string }).reason, `${label(c.softmax!.output)}: softmax casts its input to another dtype (SDPA computes in the input dtype)`);
      same((r as { node?: Node }).node, c.softmax, 'the node refused');
    });

    it('a negative scale', () => {
      const c = new Core();
      const s = c.as('scale', c.b.mulScalar(c.scores(), -0.5));
      c.finish(s);
      assert.equal(c.refusal(), `${label(s)}: the scale is not positive`);
    });

    it('masked_fill with a fill that is neither -inf nor a huge negative', () => {
      const c = new Core();
      const s = c.as('mask', c.b.maskedFill(c.scores(), c.b.input('pad', [B, 1, 1, L], 'bool'), -1e9));
      c.finish(s);
      assert.equal(c.refusal(), `${label(s)}: masked_fill with -1000000000 (neither -inf nor a huge negative float32)`);
    });

    it('a mask op SDPA cannot take', () => {
      const c = new Core();
      const s = c.as('mask', c.b.binary('aten::mul', c.scores(), c.b.input('m', [B, 1, 1, L])));
      c.finish(s);
      assert.equal(c.refusal(), `${label(s)}: not a mask SDPA can take (masked_fill/where with -inf or a huge negative, or an added or subtracted tensor)`);
    });

    it('returned attention weights', () => {
      const c = new Core();
      c.finish(c.scores());
      c.b.out(c.softmax!.output);
      assert.equal(c.refusal(), `${label(c.softmax!.output)}: the attention weights are read outside the core (returned weights)`);
    });

    it('scores of rank 2', () => {
      const b = new GB();
      const q = b.input('q', [L, D]), k = b.input('k', [L, D]), v = b.input('v', [L, D]);
      const s = b.matmul(q, b.transpose(k, 0, 1));
      const p = b.softmax(s);
      const ctx = b.matmul(p, v);
      b.out(ctx);
      const r = readAttentionCore([s.node!, p.node!, ctx.node!], ['scores', 'softmax', 'context']);
      assert.equal(r.ok, false);
      assert.equal((r as { reason: string }).reason, `${label(s)}: rank-2 scores (SDPA needs a batch dim)`);
      same((r as { node?: Node }).node, s.node, 'the node refused');
    });

    it('scores computed by something other than a batched matmul', () => {
      const c = new Core();
      const s = c.as('scores', c.b.binary('aten::mul', c.q, c.k));
      c.finish(s);
      assert.equal(c.refusal(), `${label(s)}: scores computed by aten::mul; SDPA needs a batched matmul`);
    });
  });
});

// ---- lowering ----------------------------------------------------------------------------------

const sdpaOf = (b: GB): Node => {
  const found = b.g.nodes().filter((n) => n.kind === 'aten::scaled_dot_product_attention');
  assert.equal(found.length, 1, 'one SDPA node');
  return found[0];
};
/** SDPA's inputs: q, k, v, attn_mask, dropout_p, is_causal, scale, enable_gqa. */
const consts = (n: Node, from: number) => n.inputs.slice(from).map((v) => constOf(v));

describe('lowerAttentionCore', () => {
  it('one core with an additive mask: SDPA(q, k, v, mask, 0, false, 1/sqrt(d), false) feeds the context\'s readers', () => {
    const c = new Core();
    const mask = c.b.input('mask', [B, 1, 1, L]);
    const ctx = c.finish(c.as('mask', c.b.add(c.as('scale', c.b.divScalar(c.scores(), Math.sqrt(D))), mask)));
    const merged = c.b.transpose(ctx, 1, 2);
    c.b.out(merged);
    assert.deepEqual(lowerAttentionCore(c.b.g, c.read(), 'core0'), { id: 'core0', lowered: true });
    const sdpa = sdpaOf(c.b);
    assert.deepEqual(names(sdpa.inputs.slice(0, 4)), ['q', 'k', 'v', 'mask']);
    const [dropout, causal, scale, gqa] = consts(sdpa, 4);
    assert.deepEqual([dropout, causal, gqa], [0, false, false]);
    assert.ok(Math.abs((scale as number) - SCALE) < 1e-12, `scale ${scale}`);
    same(merged.node!.inputs[0], sdpa.output, 'the head merge reads SDPA');
    same(c.b.g.outputs[0], sdpa.output, 'the graph output is SDPA');
    assert.equal(ctx.hasUses(), false);
    assert.deepEqual(sdpa.meta.fused, { kind: 'attention_core', id: 'core0' });
    c.b.g.eliminateDeadCode();
    assert.deepEqual(c.b.g.nodes().filter((n) => ['aten::softmax', 'aten::matmul', 'aten::div'].includes(n.kind)).map((n) => n.kind), [], 'the explicit core is gone');
  });

  it('a causal triu buffer as the only mask: SDPA\'s is_causal, no mask tensor; a training core\'s dropout is SDPA\'s', () => {
    const c = new Core();
    const causal = c.b.causalMask(L);
    c.finish(c.as('mask', c.b.maskedFill(c.scores(), causal, -Infinity)), { dropout: [0.2, true] });
    assert.equal(lowerAttentionCore(c.b.g, c.read(), 'c').lowered, true);
    const sdpa = sdpaOf(c.b);
    assert.equal(sdpa.inputs[3].node?.kind, 'prim::Constant', 'no mask tensor');
    assert.equal(sdpa.inputs[3].node?.constantValue(), null);
    assert.deepEqual(consts(sdpa, 4), [0.2, true, 1, false]);
  });

  it('a causal triu buffer beside another mask: one combined bool mask, is_causal false', () => {
    const c = new Core();
    const causal = c.b.causalMask(L);
    const pad = c.b.input('pad', [B, 1, 1, L], 'bool');
    c.finish(c.as('mask', c.b.maskedFill(c.as('mask', c.b.maskedFill(c.scores(), causal, -Infinity)), pad, -Infinity)));
    assert.equal(lowerAttentionCore(c.b.g, c.read(), 'c').lowered, true);
    const sdpa = sdpaOf(c.b);
    assert.equal(sdpa.inputs[3].node?.kind, 'aten::logical_not');
    assert.equal(consts(sdpa, 4)[1], false);
  });

  it('bool masks combine into one bool mask of the positions that take part: not(pad or not(keep))', () => {
    const c = new Core();
    const pad = c.b.input('pad', [B, 1, 1, L], 'bool');
    const keep = c.b.input('keep', [B, 1, L, L], 'bool');
    c.finish(c.as('mask', c.b.where(keep, c.as('mask', c.b.maskedFill(c.scores(), pad, -Infinity)), -Infinity)));
    assert.equal(lowerAttentionCore(c.b.g, c.read(), 'c').lowered, true);
    const m = sdpaOf(c.b).inputs[3].node!;
    assert.equal(m.kind, 'aten::logical_not');
    const or = m.inputs[0].node!;
    assert.equal(or.kind, 'aten::logical_or');
    assert.equal(or.inputs[0].node!.kind, 'aten::logical_not', 'keep marks kept positions: negated');
    same(or.inputs[0].node!.inputs[0], keep, 'keep');
    same(or.inputs[1], pad, 'pad');
  });

  it('a bool and an additive mask: one float mask, where(pad, -inf, 0) plus the additive one scaled by its factor', () => {
    const c = new Core();
    const pad = c.b.input('pad', [B, 1, 1, L], 'bool');
    const bias = c.b.input('bias', [B, H, L, L]);
    // bias is added before the 0.5 scale: SDPA adds masks after scaling, so it becomes 0.5 * bias.
    const s = c.as('scale', c.b.mulScalar(c.as('mask', c.b.add(c.scores(), bias)), 0.5));
    c.finish(c.as('mask', c.b.maskedFill(s, pad, -Infinity)));
    assert.equal(lowerAttentionCore(c.b.g, c.read(), 'c').lowered, true);
    const sdpa = sdpaOf(c.b);
    assert.equal(constOf(sdpa.inputs[6]), 0.5);
    const add = sdpa.inputs[3].node!;
    assert.equal(add.kind, 'aten::add');
    const [where, scaled] = [add.inputs[0].node!, add.inputs[1].node!];
    assert.equal(where.kind, 'aten::where');
    assert.deepEqual([where.inputs[0].debugName, constOf(where.inputs[1]), constOf(where.inputs[2])], ['pad', -Infinity, 0]);
    assert.equal(scaled.kind, 'aten::mul');
    assert.deepEqual([scaled.inputs[0].debugName, constOf(scaled.inputs[1])], ['bias', 0.5]);
  });

  it('k^T that is not a transpose: SDPA reads its transpose; a run-time scale multiplies the scale constant', () => {
    const c = new Core();
    const kT = c.b.input('kT', [B, H, D, L]);
    const t = c.b.g.addInput(FloatType, 'temperature');
    c.finish(c.as('scale', c.b.fresh('aten::mul', [c.scores(c.q, kT), t], SPACE)));
    assert.equal(lowerAttentionCore(c.b.g, c.read(), 'c').lowered, true);
    const sdpa = sdpaOf(c.b);
    const k = sdpa.inputs[1].node!;
    assert.deepEqual([k.kind, k.inputs[0].debugName, ...consts(k, 1)], ['aten::transpose', 'kT', -2, -1]);
    const scale = sdpa.inputs[6].node!;
    assert.deepEqual([scale.kind, constOf(scale.inputs[0]), scale.inputs[1].debugName], ['aten::mul', 1, 'temperature']);
  });

  it('a refused core leaves the graph as it was, with the reason', () => {
    const c = new Core();
    c.finish(c.as('mask', c.b.maskedFill(c.scores(), c.b.input('pad', [B, 1, 1, L], 'bool'), -1e9)));
    const before = c.b.text();
    const r = lowerAttentionCore(c.b.g, c.read(), 'c');
    assert.equal(r.lowered, false);
    assert.match(r.reason!, /masked_fill with -1000000000/);
    assert.equal(c.b.text(), before);
    assert.deepEqual(lowerAttentionCore(c.b.g, undefined, 'x'), { id: 'x', lowered: false, reason: 'the group is not an explicit attention core' });
  });

  it('a huge-negative fill scaled up afterwards is refused (it could overflow to -inf): the graph is unchanged', () => {
    const c = new Core();
    const filled = c.as('mask', c.b.maskedFill(c.scores(), c.b.input('pad', [B, 1, 1, L], 'bool'), -1e38));
    c.finish(c.as('scale', c.b.mulScalar(filled, 2)));
    assert.equal(c.read().ok, true, 'the reading itself succeeds');
    const before = c.b.text();
    assert.deepEqual(lowerAttentionCore(c.b.g, c.read(), 'c'), { id: 'c', lowered: false, reason: 'a scale after a huge-negative fill' });
    assert.equal(c.b.text(), before);
  });
});
