// The fusion partitioner: runs the rule table (rules.ts) over a graph with one matcher, merges
// each match into a group after checking that the contracted graph stays acyclic, and explains
// the attention cores and Q/K/V projection sets it could not fuse.
import type { Graph, Node, Value } from '../core/ir';
import { buildFacts, isActivation, regionFacts, VK, type GraphFacts } from '../core/facts';
import { constOf } from '../core/constants';
import { CONDITIONS, RULES, type ChainRule, type GroupKind, type Link, type ParallelRule, type Rule, type StepSpec } from './rules';
import { PROJECTING_ATTENTION_KINDS, type OpClass } from '../core/ops/classes';
import { readAttentionCore, type CoreReading } from './attention-core';

export interface FusionGroup {
  id: number;
  kind: GroupKind;
  /** The rule that created the group. */
  rule: string;
  /** Every rule that added nodes (joins included), in order. */
  rules: string[];
  /** Members in execution order. */
  nodes: Node[];
  /** Role of each member (parallel to nodes): a step role, or 'through' for layout ops between steps. */
  roles: string[];
  /** Tensors read from outside the group (activations and weights), in first-use order. */
  inputs: Value[];
  /** Tensors produced inside and read outside (or returned): what a fused kernel writes. */
  outputs: Value[];
  /** The decomposition's attention id (node.meta.attention.id), when members carry one. */
  label?: string;
  /** Explicit attention cores: what the core computes (read once, here), or why it cannot be read. */
  core?: CoreReading;
}

/** Why an attention core or a projection set was not fused: the nearest rule and what failed. */
export interface NotFused {
  subject: 'attention_core' | 'projections';
  rule: string;
  /** 'op', 'consumers', 'missing', 'free', 'acyclic', 'sameInput', 'compatibleWeights' or a condition name from rules.ts. */
  condition: string;
  message: string;
  /** The anchor (softmax) or the projection nodes. */
  nodes: Node[];
  attention?: string;
}

export interface RefusedMerge {
  rule: string;
  nodes: Node[];
  /** A node on the path that leaves the would-be group and comes back. */
  culprit: Node;
  message: string;
}

export type ProjectionStatus =
  | 'fused'        // q, k, v in one qkv_projection group
  | 'kv_fused'     // k, v in one kv_projection group; q reads another tensor (cross-attention)
  | 'packed'       // one linear already computes q, k and v (packed in_proj)
  | 'packed_kv'    // one linear computes k and v
  | 'inside_op'    // the projections are inside an opaque attention op
  | 'not_fused'
  | 'unknown';     // an operand does not come from a linear

export interface ProjectionSet {
  attention: FusionGroup;
  q: Node | null;
  k: Node | null;
  v: Node | null;
  status: ProjectionStatus;
  group?: FusionGroup;
  why?: NotFused;
}

export interface Partition {
  graph: Graph;
  /** @internal shared with the other analyses */
  facts: GraphFacts;
  groups: FusionGroup[];
  groupOf(n: Node): FusionGroup | undefined;
  /** Groups of kind 'attention' (explicit cores and opaque attention ops). */
  attentionCores: FusionGroup[];
  projections: ProjectionSet[];
  notFused: NotFused[];
  refused: RefusedMerge[];
  ms: number;
}

export interface PartitionOptions {
  rules?: readonly Rule[];
  /** Write node.meta.group / groupKind / groupRole (default true). */
  writeMeta?: boolean;
  /** Also fuse inside nested blocks (prim::If branches, loop bodies), each block on its own (default true; memory schedules count top-level groups only). */
  nestedBlocks?: boolean;
  /** @internal reuse facts already built for this graph */
  facts?: GraphFacts;
}

interface GroupState {
  id: number;
  kind: GroupKind;
  rule: string;
  ruleIndex: number;
  rules: string[];
  members: number[];
  roles: Map<number, string>;
  minPos: number;
  maxPos: number;
}

interface Failure { progress: number; condition: string; message: string }

type ChainResult =
  | { ok: true; picked: Map<number, string>; throughs: number[]; join: number }
  | { ok: false; failure: Failure };

const stepMin = (s: StepSpec) => s.min ?? 1;
const stepMax = (s: StepSpec) => s.max ?? 1;
const intersects = (a: readonly OpClass[], b: readonly OpClass[]) => a.some((x) => b.includes(x));

class Partitioner {
  readonly groupOf: Int32Array;
  readonly groups: GroupState[] = [];
  readonly refused: { rule: string; set: number[]; culprit: number; message: string }[] = [];
  private readonly seen: Int32Array;
  private epoch = 0;
  private readonly keyCache = new Map<number, string>();

  constructor(readonly f: GraphFacts, readonly rules: readonly Rule[]) {
    this.groupOf = new Int32Array(f.nodes.length).fill(-1);
    this.seen = new Int32Array(f.nodes.length);
  }

  // ---- small helpers ----------------------------------------------------------------------------

  kindOf(p: number): string { return this.f.nodes[p].kind; }
  vOut(p: number, k = 0): number { const v = this.f.nodes[p].outputs[k]; return v ? this.f.vindex.get(v)! : -1; }
  vIn(p: number, k: number): number { const v = this.f.nodes[p].inputs[k]; return v ? this.f.vindex.get(v) ?? -1 : -1; }
  name(i: number): string { return '%' + this.f.values[i].debugName; }
  label(p: number): string { return `${this.kindOf(p)} -> ${this.f.nodes[p].outputs.map((o) => '%' + o.debugName).join(', ')}`; }
  groupLabel(g: number): string { const s = this.groups[g]; return `group #${g} (${s.kind}, rule ${s.rule})`; }

  /** Data consumers (top-level ancestors for uses inside blocks). */
  users(i: number): number[] {
    const u = this.f.dataUsers[i];
    if (!this.f.hasBlocks) return u;
    return [...new Set(u.map((p) => this.f.topOf[p]))];
  }

  /** Chain inputs of node p per link: value indices of activation inputs, latest producer first for 'any'. */
  chainInputs(p: number, link: Link): number[] {
    if (link === 'input0') { const i = this.vIn(p, 0); return i >= 0 && isActivation(this.f, i) ? [i] : []; }
    const ins = this.f.nodes[p].inputs.map((_, k) => this.vIn(p, k)).filter((i) => i >= 0 && isActivation(this.f, i));
    return [...new Set(ins)].sort((a, b) => this.f.producer[b] - this.f.producer[a]);
  }

  // ---- chain matching ---------------------------------------------------------------------------

  /** Match a chain rule from one anchor (see ChainMatch). */
  matchChain(rule: ChainRule, anchor: number): ChainResult { return new ChainMatch(this, rule).run(anchor); }

  // ---- merging with the acyclicity check --------------------------------------------------------

  /** Whether a value produced in `set` (or in group g) is read only inside it. */
  private internal(i: number, isIn: (p: number) => boolean): boolean {
    if (this.f.graphOutput[i]) return false;
    return this.users(i).every(isIn);
  }

  /** Edges of the contracted graph: data reads, and metadata reads of values that materialise. */
  private edgeTargets(m: number, isIn: (p: number) => boolean, out: number[]): void {
    const f = this.f;
    for (const v of f.nodes[m].outputs) {
      const i = f.vindex.get(v)!;
      for (const u of this.users(i)) out.push(u);
      if (f.metaUsers[i].length && !this.internal(i, isIn)) for (const u of f.metaUsers[i]) out.push(this.f.hasBlocks ? f.topOf[u] : u);
    }
  }

  /**
   * A node outside `set` on a path that leaves the set and re-enters it (through other groups
   * contracted to single nodes), or -1 when merging `set` keeps the graph acyclic.
   */
  cycleThrough(set: ReadonlySet<number>): number {
    let bound = -1;
    for (const p of set) bound = Math.max(bound, p);
    // Nodes after `bound` cannot lead back, except through groups reaching back before it.
    for (let changed = true; changed;) {
      changed = false;
      for (const g of this.groups) if (g.minPos <= bound && g.maxPos > bound) { bound = g.maxPos; changed = true; }
    }
    const epoch = ++this.epoch;
    const stack: number[] = [];
    const inSet = (p: number) => set.has(p);
    for (const m of set) {
      const targets: number[] = [];
      this.edgeTargets(m, inSet, targets);
      for (const u of targets) if (!set.has(u)) stack.push(u);
    }
    while (stack.length) {
      const q = stack.pop()!;
      if (q > bound || this.seen[q] === epoch) continue;
      const g = this.groupOf[q];
      const unit = g >= 0 ? this.groups[g].members : [q];
      const inUnit = g >= 0 ? (p: number) => this.groupOf[p] === g : (p: number) => p === q;
      for (const m of unit) this.seen[m] = epoch;
      for (const m of unit) {
        const targets: number[] = [];
        this.edgeTargets(m, inUnit, targets);
        for (const u of targets) {
          if (set.has(u)) return q;
          if (!inUnit(u) && this.seen[u] !== epoch) stack.push(u);
        }
      }
    }
    return -1;
  }

  /** Merge nodes into a new group, or into `join`; refused (returns -1) when it would create a cycle. */
  merge(rule: Rule, ruleIndex: number, picked: Map<number, string>, throughs: number[], join: number): number {
    const set = new Set<number>([...picked.keys(), ...throughs]);
    if (join >= 0) for (const m of this.groups[join].members) set.add(m);
    const culprit = this.cycleThrough(set);
    if (culprit >= 0) {
      const sorted = [...set].sort((a, b) => a - b);
      this.refused.push({
        rule: rule.name, set: sorted, culprit,
        message: `merging ${sorted.map((p) => this.kindOf(p)).join(', ')} would create a cycle: ${this.label(culprit)} depends on the group and feeds it`,
      });
      return -1;
    }
    let g: GroupState;
    if (join >= 0) {
      g = this.groups[join];
      if (!g.rules.includes(rule.name)) g.rules.push(rule.name);
    } else {
      g = { id: this.groups.length, kind: rule.kind, rule: rule.name, ruleIndex, rules: [rule.name], members: [], roles: new Map(), minPos: Infinity, maxPos: -1 };
      this.groups.push(g);
    }
    const add = (p: number, role: string) => {
      if (this.groupOf[p] === g.id) return;
      this.groupOf[p] = g.id;
      g.members.push(p);
      g.roles.set(p, role);
      g.minPos = Math.min(g.minPos, p);
      g.maxPos = Math.max(g.maxPos, p);
    };
    picked.forEach((role, p) => add(p, role));
    throughs.forEach((p) => add(p, 'through'));
    g.members.sort((a, b) => a - b);
    return g.id;
  }

  runChain(rule: ChainRule, ruleIndex: number): void {
    const a = rule.steps[rule.anchor];
    for (let p = 0; p < this.f.nodes.length; p++) {
      if (this.groupOf[p] >= 0 || !this.f.topLevel[p] || !intersects(this.f.classes[p], a.ops)) continue;
      const r = this.matchChain(rule, p);
      if (r.ok) this.merge(rule, ruleIndex, r.picked, r.throughs, r.join);
    }
  }

  // ---- parallel projections ---------------------------------------------------------------------

  /** The activation a linear-class node multiplies, and its weight value. */
  linearOperands(p: number): { x: number; w: number } | null {
    const n = this.f.nodes[p];
    const at = (k: number) => this.vIn(p, k);
    switch (n.kind) {
      case 'aten::linear': case 'aten::_linear': return { x: at(0), w: at(1) };
      case 'aten::addmm': return { x: at(1), w: at(2) };
      case 'aten::matmul': case 'aten::mm': case 'aten::bmm':
        return this.f.weight[at(1)] ? { x: at(0), w: at(1) } : { x: at(1), w: at(0) };
      default: return null;
    }
  }

  /** Equal keys: the same tensor, possibly through identical chains of views with equal arguments. */
  tensorKey(i: number): string {
    const cached = this.keyCache.get(i);
    if (cached !== undefined) return cached;
    const f = this.f;
    const p = f.producer[i];
    let key = `v${i}`;
    if (p >= 0 && f.role[p] === 'view' && f.classes[p].includes('layout')) {
      const n = f.nodes[p];
      const args: string[] = [];
      let ok = true;
      for (let k = 1; k < n.inputs.length && ok; k++) {
        const c = constOf(n.inputs[k]);
        if (c === undefined) ok = false; else args.push(JSON.stringify(c));
      }
      if (ok) key = `${n.kind}(${this.tensorKey(f.vindex.get(n.inputs[0])!)};${args.join(',')})`;
    }
    this.keyCache.set(i, key);
    return key;
  }

  weightSignature(p: number): string {
    const ops = this.linearOperands(p);
    if (!ops) return '?';
    const w = this.f.info[ops.w];
    const x = this.f.info[ops.x];
    const form = this.kindOf(p) === 'aten::linear' || this.kindOf(p) === 'aten::_linear' ? 'linear' : this.kindOf(p);
    return `${form} ${w?.dtype ?? '?'} rank ${w?.shape.length ?? '?'} in ${x?.shape[x.shape.length - 1] ?? '?'}`;
  }

  runParallel(rule: ParallelRule, ruleIndex: number): void {
    const f = this.f;
    const byKey = new Map<string, number[]>();
    for (let p = 0; p < f.nodes.length; p++) {
      if (this.groupOf[p] >= 0 || !f.topLevel[p] || !intersects(f.classes[p], rule.ops)) continue;
      const ops = this.linearOperands(p);
      if (!ops || ops.x < 0 || !isActivation(f, ops.x)) continue;
      const key = this.tensorKey(ops.x);
      const list = byKey.get(key);
      if (list) list.push(p); else byKey.set(key, [p]);
    }
    for (const ps of byKey.values()) {
      if (ps.length < rule.min) continue;
      const bySig = new Map<string, number[]>();
      for (const p of ps) { const s = this.weightSignature(p); const l = bySig.get(s); if (l) l.push(p); else bySig.set(s, [p]); }
      let best: number[] = [];
      for (const l of bySig.values()) if (l.length > best.length) best = l;
      if (best.length < rule.min) continue;
      const picked = new Map(best.map((p) => [p, 'projection'] as [number, string]));
      this.merge(rule, ruleIndex, picked, [], -1);
    }
  }

  run(): void {
    this.rules.forEach((rule, k) => (rule.type === 'chain' ? this.runChain(rule, k) : this.runParallel(rule, k)));
  }
}

// ---- chain matching ----------------------------------------------------------------------------

/**
 * One chain rule matched from one anchor: backwards from the anchor to the first step, then
 * forwards to the last, trying each way a node can be taken and undoing what fails. `picked`,
 * `throughs` and `join` are the match so far; `best` is the failure that got furthest, to explain
 * a miss.
 */
class ChainMatch {
  private readonly f: GraphFacts;
  private readonly steps: readonly StepSpec[];
  private readonly through: readonly OpClass[];
  private readonly picked = new Map<number, string>();
  private throughs: number[] = [];
  private join = -1;
  private best: Failure | null = null;

  constructor(private readonly pt: Partitioner, private readonly rule: ChainRule) {
    this.f = pt.f;
    this.steps = rule.steps;
    this.through = rule.through ?? [];
  }

  run(anchor: number): ChainResult {
    const { f, pt, rule, steps, picked } = this;
    const a = steps[rule.anchor];
    if (!f.topLevel[anchor]) return { ok: false, failure: { progress: 0, condition: 'missing', message: 'inside a nested block' } };
    if (!intersects(f.classes[anchor], a.ops)) return { ok: false, failure: { progress: 0, condition: 'op', message: `${pt.kindOf(anchor)} is not ${a.role}` } };
    if (!this.free(anchor)) return { ok: false, failure: { progress: 0, condition: 'free', message: `${pt.label(anchor)} is already in ${pt.groupLabel(pt.groupOf[anchor])}` } };
    const why = this.checkWhere(a, anchor);
    if (why) return { ok: false, failure: { progress: 0, condition: why.split(':')[0], message: `${pt.label(anchor)}: ${why.slice(why.indexOf(':') + 2)}` } };
    picked.set(anchor, this.roleFor(a, anchor));
    const ok = this.back(rule.anchor, 1, anchor) && this.fwd(rule.anchor, 1, anchor);
    if (ok && picked.size >= (rule.minSteps ?? 2)) return { ok: true, picked, throughs: this.throughs, join: this.join };
    if (ok) this.fail('missing', `only ${picked.size} of the ${rule.minSteps ?? 2} ops the rule needs matched (${[...picked.values()].join(', ')})`);
    return { ok: false, failure: this.best ?? { progress: 0, condition: 'op', message: 'no match' } };
  }

  // ---- helpers --------------------------------------------------------------------------------

  private fail(condition: string, message: string): false {
    const progress = this.picked.size;
    if (!this.best || progress > this.best.progress) this.best = { progress, condition, message };
    return false;
  }

  private roleFor(s: StepSpec, p: number): string { return s.role === 'adjust' ? (this.f.classes[p].includes('scale') ? 'scale' : 'mask') : s.role; }

  private inside(q: number, extra: readonly number[], joinCandidate = this.join): boolean {
    return this.picked.has(q) || this.throughs.includes(q) || extra.includes(q) || (joinCandidate >= 0 && this.pt.groupOf[q] === joinCandidate);
  }

  private allOptional(from: number, to: number): boolean { for (let t = from; t <= to; t++) if (stepMin(this.steps[t]) > 0) return false; return true; }

  private checkWhere(s: StepSpec, q: number): string | null {
    for (const c of s.where ?? []) { const why = CONDITIONS[c](this.f, q); if (why) return `${c}: ${why}`; }
    return null;
  }

  /** Can q be taken by step s? Returns the join group (or -1), or null with a failure recorded. */
  private take(s: StepSpec, q: number): number | null {
    const { pt, rule, join } = this;
    const g = pt.groupOf[q];
    if (g < 0) return -1;
    if (!s.join) return (this.fail('free', `${pt.label(q)} is already in ${pt.groupLabel(g)}`), null);
    if (join >= 0 && join !== g) return (this.fail('free', `${pt.label(q)} is in ${pt.groupLabel(g)}, another group than the one joined`), null);
    if (rule.joinKinds && !rule.joinKinds.includes(pt.groups[g].kind)) return (this.fail('free', `${pt.label(q)} is already in ${pt.groupLabel(g)}`), null);
    return g;
  }

  private free(q: number): boolean { return this.pt.groupOf[q] < 0; }

  /** "a (x|y) or b (z)": the steps that could come next in direction dir, up to the first required one. */
  private wanted(s: number, c: number, dir: 1 | -1): string {
    const steps = this.steps;
    const out: string[] = [];
    const show = (st: StepSpec) => `${st.role} (${st.ops.join('|')})`;
    if (c < stepMax(steps[s])) out.push(show(steps[s]));
    for (let t = s + dir; t >= 0 && t < steps.length; t += dir) {
      out.push(show(steps[t]));
      if (stepMin(steps[t]) > 0) break;
    }
    return [...new Set(out)].join(' or ') || 'nothing';
  }

  private usersNote(us: number[]): string { return us.map((u) => this.pt.kindOf(u)).join(', '); }

  // ---- backwards ------------------------------------------------------------------------------

  /** X matched step s (c times so far); find what precedes it. */
  private back(s: number, c: number, X: number): boolean {
    const { pt, rule, steps, picked } = this;
    const step = steps[s];
    const canStop = c >= stepMin(step) && this.allOptional(0, s - 1);
    const link = step.in ?? 'input0';
    if (link === 'each') {
      // Every input may independently match the leading optional steps.
      if (!this.allOptional(0, s - 1)) throw new Error(`rule ${rule.name}: 'each' needs optional leading steps`);
      for (const v of pt.chainInputs(X, 'any')) {
        const snapshot = { picked: new Map(picked), throughs: [...this.throughs], join: this.join };
        if (!this.backFrom(s, c, X, v)) { picked.clear(); snapshot.picked.forEach((r, k) => picked.set(k, r)); this.throughs = snapshot.throughs; this.join = snapshot.join; }
      }
      return c >= stepMin(step);
    }
    if (s === 0 && c >= stepMax(step)) return canStop;
    for (const v of pt.chainInputs(X, link)) if (this.backFrom(s, c, X, v)) return true;
    if (canStop) return true;
    if (pt.chainInputs(X, link).length === 0) this.fail('missing', `${pt.label(X)} has no activation input for ${steps[Math.max(0, s - 1)].role}`);
    return false;
  }

  /** From X's input v up through its producers: the step that precedes X, past `through` ops. */
  private backFrom(s: number, c: number, X: number, v: number): boolean {
    const { f, pt, steps, picked } = this;
    const path: number[] = [];
    let q = f.producer[v];
    let carried = v;
    while (q >= 0 && f.topLevel[q]) {
      // Everything that reads q's output must end up inside the group.
      const us = pt.users(carried);
      const joinCand = pt.groupOf[q] >= 0 ? pt.groupOf[q] : this.join;
      const outside = us.filter((u) => u !== X && !this.inside(u, path, joinCand));
      if (outside.length || f.graphOutput[carried]) {
        return this.fail('consumers', `${pt.name(carried)} (${pt.kindOf(q)}) is also read by ${outside.length ? this.usersNote(outside) : 'the graph output'} outside the pattern, so it must be materialised`);
      }
      // Match q as step t: a repeat of s, or an earlier step with only optional steps between.
      for (let t = s; t >= 0; t--) {
        if (t === s && c >= stepMax(steps[s])) continue;
        if (t < s && (c < stepMin(steps[s]) || !this.allOptional(t + 1, s - 1))) break;
        const st = steps[t];
        if (!intersects(f.classes[q], st.ops)) continue;
        const g = this.take(st, q);
        if (g === null) continue;
        // Conditions apply to free nodes; a joined node is vouched for by its group.
        const why = g >= 0 ? null : this.checkWhere(st, q);
        if (why) { this.fail(why.split(':')[0], `${pt.label(q)}: ${why.slice(why.indexOf(':') + 2)}`); continue; }
        const savedThroughs = this.throughs;
        const savedJoin = this.join;
        this.throughs = [...this.throughs, ...path];
        picked.set(q, this.roleFor(st, q));
        if (g >= 0) this.join = g;
        const ok = g >= 0 ? this.allOptional(0, t - 1) || this.fail('missing', `joined ${pt.groupLabel(g)} before matching ${steps[0].role}`) : this.back(t, t === s ? c + 1 : 1, q);
        if (ok) return true;
        picked.delete(q);
        this.throughs = savedThroughs;
        this.join = savedJoin;
      }
      if (intersects(f.classes[q], this.through) && this.free(q)) {
        const i0 = pt.vIn(q, 0);
        if (i0 < 0 || !isActivation(f, i0)) break;
        path.push(q);
        carried = i0;
        q = f.producer[i0];
        continue;
      }
      return this.fail('op', `expected ${this.wanted(s, c, -1)} before ${pt.kindOf(X)}, found ${pt.label(q)}`);
    }
    return this.fail('missing', `${pt.name(v)} feeding ${pt.kindOf(X)} comes from ${q < 0 ? 'a graph or block input' : 'a nested block'}`);
  }

  // ---- forwards -------------------------------------------------------------------------------

  /** X matched step s (c times); find what follows it. */
  private fwd(s: number, c: number, X: number): boolean {
    const steps = this.steps;
    const last = steps.length - 1;
    const canStop = c >= stepMin(steps[s]) && this.allOptional(s + 1, last);
    if (s === last && c >= stepMax(steps[s])) return canStop;
    if (this.fwdFrom(s, c, X)) return true;
    return canStop;
  }

  /** From X's output down through its sole consumer: the step that follows X, past `through` ops. */
  private fwdFrom(s: number, c: number, X: number): boolean {
    const { f, pt, steps, picked } = this;
    const path: number[] = [];
    let cur = X;
    for (;;) {
      const o = pt.vOut(cur);
      if (o < 0 || f.vkind[o] !== VK.Tensor) return this.fail('missing', `${pt.label(cur)} has no tensor output`);
      const us = pt.users(o);
      if (f.graphOutput[o]) return this.fail('consumers', `${pt.name(o)} (${pt.kindOf(cur)}) is a graph output, so it must be materialised`);
      if (us.length === 0) return this.fail('missing', `${pt.name(o)} (${pt.kindOf(cur)}) has no consumer`);
      let Y = us[0];
      if (us.length > 1) {
        const g = pt.groupOf[us[0]];
        if (!(g >= 0 && us.every((u) => pt.groupOf[u] === g))) {
          return this.fail('consumers', `${pt.name(o)} (${pt.kindOf(cur)}) is read by ${us.length} nodes (${this.usersNote(us)}), so it must be materialised`);
        }
        Y = Math.min(...us);
      }
      if (!f.topLevel[Y]) return this.fail('missing', `${pt.name(o)} is read inside a nested block`);
      const readsAt = (link: Link) => (link === 'input0' ? pt.vIn(Y, 0) === o : f.nodes[Y].inputs.some((_, k) => pt.vIn(Y, k) === o));
      for (let t = s; t < steps.length; t++) {
        if (t === s && c >= stepMax(steps[s])) continue;
        if (t > s && (c < stepMin(steps[s]) || !this.allOptional(s + 1, t - 1))) break;
        const st = steps[t];
        if (!intersects(f.classes[Y], st.ops)) continue;
        if (!readsAt(st.in === 'each' ? 'any' : st.in ?? 'input0')) { this.fail('op', `${pt.label(Y)} does not read ${pt.name(o)} as its ${st.in ?? 'input0'}`); continue; }
        if (us.length > 1 && !st.join) { this.fail('consumers', `${pt.name(o)} is read by ${us.length} nodes`); continue; }
        const g = this.take(st, Y);
        if (g === null) continue;
        const why = g >= 0 ? null : this.checkWhere(st, Y);
        if (why) { this.fail(why.split(':')[0], `${pt.label(Y)}: ${why.slice(why.indexOf(':') + 2)}`); continue; }
        const savedThroughs = this.throughs;
        const savedJoin = this.join;
        this.throughs = [...this.throughs, ...path];
        picked.set(Y, this.roleFor(st, Y));
        if (g >= 0) this.join = g;
        const ok = g >= 0 ? this.allOptional(t + 1, steps.length - 1) || this.fail('missing', `joined ${pt.groupLabel(g)} before the last step`) : this.fwd(t, t === s ? c + 1 : 1, Y);
        if (ok) return true;
        picked.delete(Y);
        this.throughs = savedThroughs;
        this.join = savedJoin;
      }
      if (us.length === 1 && intersects(f.classes[Y], this.through) && this.free(Y) && pt.vIn(Y, 0) === o) {
        path.push(Y);
        cur = Y;
        continue;
      }
      return this.fail('op', `expected ${this.wanted(s, c, 1)} after ${pt.kindOf(X)}, found ${pt.label(Y)}`);
    }
  }
}

// ---- explanations ------------------------------------------------------------------------------

/** Follow views, casts and scalings back to the linear that produced a q/k/v operand. */
function projectionSource(pt: Partitioner, i: number): number {
  const f = pt.f;
  for (let guard = 0; guard < 64 && i >= 0; guard++) {
    const p = f.producer[i];
    if (p < 0) return -1;
    const cls = f.classes[p];
    if (cls.includes('linear')) return p;
    if (f.role[p] === 'view' || cls.includes('layout') || cls.includes('cast') || cls.includes('scale') || f.role[p] === 'container') {
      const n = f.nodes[p];
      const next = n.inputs.map((v) => f.vindex.get(v) ?? -1).find((k) => k >= 0 && (f.vkind[k] === VK.Container || isActivation(f, k)));
      if (next === undefined) return -1;
      i = next;
      continue;
    }
    return -1;
  }
  return -1;
}

function explainProjections(pt: Partitioner, set: { role: string; p: number }[], parallelIndex: number, name: string): NotFused | null {
  const f = pt.f;
  const nodes = set.map((s) => f.nodes[s.p]);
  const mk = (condition: string, message: string): NotFused => ({ subject: 'projections', rule: name, condition, message, nodes });
  const keys = set.map((s) => { const o = pt.linearOperands(s.p); return o ? pt.tensorKey(o.x) : '?'; });
  for (let k = 1; k < set.length; k++) {
    if (keys[k] !== keys[0]) {
      const a = pt.linearOperands(set[0].p)!, b = pt.linearOperands(set[k].p)!;
      return mk('sameInput', `${set[0].role} reads ${pt.name(a.x)} but ${set[k].role} reads ${pt.name(b.x)}: they do not share an input`);
    }
  }
  const sigs = set.map((s) => pt.weightSignature(s.p));
  for (let k = 1; k < set.length; k++) {
    if (sigs[k] !== sigs[0]) return mk('compatibleWeights', `${set[0].role} is ${sigs[0]} but ${set[k].role} is ${sigs[k]}: no single GEMM covers both`);
  }
  for (const s of set) {
    const g = pt.groupOf[s.p];
    if (g >= 0 && pt.groups[g].ruleIndex <= parallelIndex) return mk('free', `${s.role} (${pt.label(s.p)}) was already taken by ${pt.groupLabel(g)}`);
  }
  const r = pt.refused.find((x) => set.every((s) => x.set.includes(s.p)));
  if (r) return mk('acyclic', r.message);
  for (const s of set) {
    const g = pt.groupOf[s.p];
    if (g >= 0) return mk('free', `${s.role} (${pt.label(s.p)}) is in ${pt.groupLabel(g)}`);
  }
  return null;
}

function conditionsPassed(w: NotFused | null): number {
  const order = ['sameInput', 'compatibleWeights', 'free', 'acyclic'];
  return w ? order.indexOf(w.condition) : order.length;
}

function attentionLabel(nodes: Node[]): string | undefined {
  for (const n of nodes) {
    const a = n.meta.attention as { id?: unknown } | undefined;
    if (a && typeof a.id === 'string') return a.id;
  }
  return undefined;
}

// ---- entry point -------------------------------------------------------------------------------

/** Partition a graph into fusion groups (shapes should be propagated first for shape conditions). */
export function partitionGraph(graph: Graph, opts: PartitionOptions = {}): Partition {
  const t0 = performance.now();
  const f = opts.facts ?? buildFacts(graph);
  const rules = opts.rules ?? RULES;
  const regions = [f];
  // Each nested block is fused on its own: a group never spans a block boundary.
  if (opts.nestedBlocks !== false && f.hasBlocks) {
    for (const b of graph.allBlocks().slice(1)) if (b.nodes().some((n) => f.role[f.pos.get(n)!] === 'compute')) regions.push(regionFacts(f, b));
  }
  const groups: FusionGroup[] = [];
  const projections: ProjectionSet[] = [];
  const notFused: NotFused[] = [];
  const refused: RefusedMerge[] = [];
  for (const rf of regions) {
    const pt = new Partitioner(rf, rules);
    pt.run();
    const mine = publicGroups(pt);
    // Projection sets name the kinds of the parallel groups they find (qkv_projection, kv_projection).
    projections.push(...projectionSets(pt, mine, mine.filter((g) => g.kind === 'attention'), rules));
    notFused.push(...unfusedCores(pt, rules));
    refused.push(...pt.refused.map((r) => ({ rule: r.rule, nodes: r.set.map((p) => f.nodes[p]), culprit: f.nodes[r.culprit], message: r.message })));
    for (const g of mine) g.id += groups.length;
    groups.push(...mine);
  }
  for (const ps of projections) if (ps.why) notFused.push(ps.why);
  const attentionCores = groups.filter((g) => g.kind === 'attention');

  if (opts.writeMeta !== false) {
    for (const n of f.nodes) { delete n.meta.group; delete n.meta.groupKind; delete n.meta.groupRole; }
    for (const g of groups) g.nodes.forEach((n, k) => { n.meta.group = g.id; n.meta.groupKind = g.kind; n.meta.groupRole = g.roles[k]; });
  }
  const byNode = new Map<Node, FusionGroup>();
  for (const g of groups) for (const n of g.nodes) byNode.set(n, g);
  return {
    graph, facts: f, groups, groupOf: (n: Node) => byNode.get(n), attentionCores, projections, notFused, refused,
    ms: performance.now() - t0,
  };
}

/** The partitioner's groups as published: members, roles, the tensors read and written, the core's reading. */
function publicGroups(pt: Partitioner): FusionGroup[] {
  const f = pt.f;
  return pt.groups.map((g) => {
    const inG = (p: number) => pt.groupOf[p] === g.id;
    const inputs: Value[] = [];
    const outputs: Value[] = [];
    const seenIn = new Set<number>();
    for (const m of g.members) {
      for (const v of f.nodes[m].inputs) {
        const i = f.vindex.get(v)!;
        if (f.vkind[i] !== VK.Tensor || f.scalar[i] || seenIn.has(i)) continue;
        const prod = f.producer[i];
        if (prod >= 0 && inG(prod)) continue;
        seenIn.add(i);
        inputs.push(v);
      }
      for (const v of f.nodes[m].outputs) {
        const i = f.vindex.get(v)!;
        if (f.vkind[i] !== VK.Tensor) continue;
        if (f.graphOutput[i] || pt.users(i).some((u) => !inG(u))) outputs.push(v);
      }
    }
    const nodes = g.members.map((p) => f.nodes[p]);
    const roles = g.members.map((p) => g.roles.get(p)!);
    const isCore = g.kind === 'attention' && roles.includes('softmax');
    return {
      id: g.id, kind: g.kind, rule: g.rule, rules: [...g.rules], nodes, roles,
      inputs, outputs, label: attentionLabel(nodes), ...(isCore ? { core: readAttentionCore(nodes, roles) } : {}),
    };
  });
}

/** Projection sets of every attention group; fused sets rename their parallel group's kind. */
function projectionSets(pt: Partitioner, groups: FusionGroup[], attentionCores: FusionGroup[], rules: readonly Rule[]): ProjectionSet[] {
  const parallelIndex = rules.findIndex((r) => r.type === 'parallel');
  const parallelName = parallelIndex >= 0 ? rules[parallelIndex].name : 'parallel_projection';
  const projections: ProjectionSet[] = [];
  for (const g of attentionCores) {
    if (PROJECTING_ATTENTION_KINDS.has(g.nodes[0].kind)) { projections.push({ attention: g, q: null, k: null, v: null, status: 'inside_op' }); continue; }
    const operands = qkvOperands(pt, g);
    if (!operands) continue;
    projections.push(projectionSet(pt, groups, g, operands, parallelIndex, parallelName));
  }
  return projections;
}

/** The q, k and v values an attention group reads: an attention op's inputs, or the scores' and context's operands. */
function qkvOperands(pt: Partitioner, g: FusionGroup): [number, number, number] | undefined {
  const f = pt.f;
  const st = pt.groups[g.id];
  const head = g.nodes[0];
  if (f.classes[f.pos.get(head)!].includes('attention')) {
    const p = f.pos.get(head)!;
    return [pt.vIn(p, 0), pt.vIn(p, 1), pt.vIn(p, 2)];
  }
  const scores = st.members.find((p) => st.roles.get(p) === 'scores');
  const context = st.members.find((p) => st.roles.get(p) === 'context');
  if (scores === undefined || context === undefined) return undefined;
  return [pt.vIn(scores, 0), pt.vIn(scores, 1), pt.vIn(context, 1)];
}

/** The linears behind q, k and v, and whether (and how) they were fused, or why not. */
function projectionSet(pt: Partitioner, groups: FusionGroup[], g: FusionGroup, [qv, kv, vv]: [number, number, number],
  parallelIndex: number, parallelName: string): ProjectionSet {
  const f = pt.f;
  const [sq, sk, sv] = [qv, kv, vv].map((i) => (i >= 0 ? projectionSource(pt, i) : -1));
  const node = (p: number) => (p >= 0 ? f.nodes[p] : null);
  const ps: ProjectionSet = { attention: g, q: node(sq), k: node(sk), v: node(sv), status: 'unknown' };
  if (sq < 0 || sk < 0 || sv < 0) return ps;
  const gq = pt.groupOf[sq], gk = pt.groupOf[sk], gv = pt.groupOf[sv];
  const isParallel = (x: number) => x >= 0 && pt.groups[x].rule === parallelName;
  if (sq === sk && sk === sv) { ps.status = 'packed'; return ps; }
  if (sk === sv) { ps.status = 'packed_kv'; return ps; }
  if (gq >= 0 && gq === gk && gk === gv && isParallel(gq)) { ps.status = 'fused'; ps.group = groups[gq]; groups[gq].kind = 'qkv_projection'; return ps; }
  const qShares = pt.tensorKey(pt.linearOperands(sq)!.x) === pt.tensorKey(pt.linearOperands(sk)!.x);
  if (gk >= 0 && gk === gv && isParallel(gk) && !qShares) { ps.status = 'kv_fused'; ps.group = groups[gk]; groups[gk].kind = 'kv_projection'; return ps; }
  ps.status = 'not_fused';
  const qkv = explainProjections(pt, [{ role: 'q_proj', p: sq }, { role: 'k_proj', p: sk }, { role: 'v_proj', p: sv }], parallelIndex, parallelName);
  const kvOnly = explainProjections(pt, [{ role: 'k_proj', p: sk }, { role: 'v_proj', p: sv }], parallelIndex, parallelName);
  let why = conditionsPassed(kvOnly) > conditionsPassed(qkv) ? kvOnly : qkv;
  if (!why) why = { subject: 'projections', rule: parallelName, condition: 'free', message: 'the projections are in different groups', nodes: [sq, sk, sv].map((p) => f.nodes[p]) };
  why.attention = g.label;
  ps.why = why;
  return ps;
}

/** Attention cores the explain rules could not fuse, each with the reason. */
function unfusedCores(pt: Partitioner, rules: readonly Rule[]): NotFused[] {
  const f = pt.f;
  const notFused: NotFused[] = [];
  rules.forEach((rule) => {
    if (rule.type !== 'chain' || !rule.explain) return;
    const a = rule.steps[rule.anchor];
    for (let p = 0; p < f.nodes.length; p++) {
      if (!f.topLevel[p] || !intersects(f.classes[p], a.ops)) continue;
      const g = pt.groupOf[p];
      if (g >= 0 && pt.groups[g].kind === rule.kind) continue;
      const saved = pt.groupOf[p];
      // Explain as if the anchor were free, so that the reason is about the pattern.
      pt.groupOf[p] = -1;
      const r = pt.matchChain(rule, p);
      pt.groupOf[p] = saved;
      let condition: string, message: string;
      if (r.ok) {
        const refusal = pt.refused.find((x) => x.rule === rule.name && x.set.includes(p));
        if (refusal) { condition = 'acyclic'; message = refusal.message; } else if (saved >= 0) { condition = 'free'; message = `${pt.label(p)} is already in ${pt.groupLabel(saved)}`; } else { continue; }
      } else {
        ({ condition, message } = r.failure);
      }
      notFused.push({ subject: 'attention_core', rule: rule.name, condition, message, nodes: [f.nodes[p]], attention: attentionLabel([f.nodes[p]]) });
    }
  });
  return notFused;
}

/** @internal for tests: would merging these nodes (as one group) create a cycle? Returns the culprit. */
export function mergeWouldCycle(graph: Graph, nodes: Node[], existing: Node[][] = []): Node | null {
  const f = buildFacts(graph);
  const pt = new Partitioner(f, []);
  const fake: ParallelRule = { type: 'parallel', name: 'test', kind: 'parallel_linear', description: '', ops: [], min: 1, where: [] };
  for (const grp of existing) {
    const picked = new Map(grp.map((n) => [f.pos.get(n)!, 'x'] as [number, string]));
    if (pt.merge(fake, 0, picked, [], -1) < 0) throw new Error('an existing group is itself cyclic');
  }
  const c = pt.cycleThrough(new Set(nodes.map((n) => f.pos.get(n)!)));
  return c >= 0 ? f.nodes[c] : null;
}
