// One region's groups as the partitioner builds them (partition.ts): the rule table run in order,
// chain rules matched by ChainMatch (chain-match.ts), parallel rules by shared input, and each
// match merged into a group only when the graph with groups contracted to nodes stays acyclic.
import { dataInput } from '../core/ir';
import { isActivation, type GraphFacts } from '../core/facts';
import { constOf } from '../core/constants';
import type { ChainRule, GroupKind, Link, ParallelRule, Rule } from './rules';
import { ChainMatch, intersects } from './chain-match';

export interface GroupState {
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

export interface Failure { progress: number; condition: string; message: string }

export type ChainResult =
  | { ok: true; picked: Map<number, string>; throughs: number[]; join: number }
  | { ok: false; failure: Failure };

/**
 * The groups being built over one region (a graph's top block, or one nested block): rules run,
 * matches merged when the contracted graph stays acyclic.
 */
export class Grouping {
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
        message: `merging ${sorted.map((p) => this.kindOf(p)).join(', ')} would create a cycle: `
          + `${this.label(culprit)} depends on the group and feeds it`,
      });
      return -1;
    }
    let g: GroupState;
    if (join >= 0) {
      g = this.groups[join];
      if (!g.rules.includes(rule.name)) g.rules.push(rule.name);
    } else {
      g = {
        id: this.groups.length, kind: rule.kind, rule: rule.name, ruleIndex, rules: [rule.name],
        members: [], roles: new Map(), minPos: Infinity, maxPos: -1,
      };
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
      if (ok) key = `${n.kind}(${this.tensorKey(f.vindex.get(dataInput(n))!)};${args.join(',')})`;
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
