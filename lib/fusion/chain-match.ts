// One chain rule matched from one anchor (grouping.ts runs it): backwards to the rule's first
// step and forwards to its last, past the rule's through ops, undoing what fails and keeping the
// failure that got furthest to explain a miss.
import { isActivation, VK, type GraphFacts } from '../core/facts';
import { CONDITIONS, stepMax, stepMin, type ChainRule, type Link, type StepSpec } from './rules';
import type { OpClass } from '../core/ops/classes';
import type { ChainResult, Failure, Grouping } from './grouping';

/** Whether an op's classes include one of a step's. */
export const intersects = (a: readonly OpClass[], b: readonly OpClass[]) => a.some((x) => b.includes(x));

/**
 * One chain rule matched from one anchor: backwards from the anchor to the first step, then
 * forwards to the last, trying each way a node can be taken and undoing what fails. `picked`,
 * `throughs` and `join` are the match so far; `best` is the failure that got furthest, to explain
 * a miss.
 */
export class ChainMatch {
  private readonly f: GraphFacts;
  private readonly steps: readonly StepSpec[];
  private readonly through: readonly OpClass[];
  private readonly picked = new Map<number, string>();
  private throughs: number[] = [];
  private join = -1;
  private best: Failure | null = null;

  constructor(private readonly pt: Grouping, private readonly rule: ChainRule) {
    this.f = pt.f;
    this.steps = rule.steps;
    this.through = rule.through ?? [];
  }

  run(anchor: number): ChainResult {
    const { f, pt, rule, steps, picked } = this;
    const a = steps[rule.anchor];
    if (!f.topLevel[anchor]) return { ok: false, failure: { progress: 0, condition: 'missing', message: 'inside a nested block' } };
    if (!intersects(f.classes[anchor], a.ops)) {
      return { ok: false, failure: { progress: 0, condition: 'op', message: `${pt.kindOf(anchor)} is not ${a.role}` } };
    }
    if (!this.free(anchor)) {
      const message = `${pt.label(anchor)} is already in ${pt.groupLabel(pt.groupOf[anchor])}`;
      return { ok: false, failure: { progress: 0, condition: 'free', message } };
    }
    const why = this.checkWhere(a, anchor);
    if (why) return { ok: false, failure: why };
    picked.set(anchor, this.roleFor(a, anchor));
    const ok = this.back(rule.anchor, 1, anchor) && this.fwd(rule.anchor, 1, anchor);
    if (ok && picked.size >= (rule.minSteps ?? 2)) return { ok: true, picked, throughs: this.throughs, join: this.join };
    if (ok) {
      const matched = [...picked.values()].join(', ');
      this.fail('missing', `only ${picked.size} of the ${rule.minSteps ?? 2} ops the rule needs matched (${matched})`);
    }
    return { ok: false, failure: this.best ?? { progress: 0, condition: 'op', message: 'no match' } };
  }

  // ---- helpers --------------------------------------------------------------------------------

  private fail(condition: string, message: string): false {
    const progress = this.picked.size;
    if (!this.best || progress > this.best.progress) this.best = { progress, condition, message };
    return false;
  }

  private roleFor(s: StepSpec, p: number): string {
    return s.role === 'adjust' ? (this.f.classes[p].includes('scale') ? 'scale' : 'mask') : s.role;
  }

  private inside(q: number, extra: readonly number[], joinCandidate = this.join): boolean {
    return this.picked.has(q) || this.throughs.includes(q) || extra.includes(q)
      || (joinCandidate >= 0 && this.pt.groupOf[q] === joinCandidate);
  }

  private allOptional(from: number, to: number): boolean {
    for (let t = from; t <= to; t++) if (stepMin(this.steps[t]) > 0) return false;
    return true;
  }

  /** The first of the step's conditions that q fails, or null. */
  private checkWhere(s: StepSpec, q: number): Failure | null {
    for (const c of s.where ?? []) {
      const why = CONDITIONS[c](this.f, q);
      if (why) return { progress: this.picked.size, condition: c, message: `${this.pt.label(q)}: ${why}` };
    }
    return null;
  }

  /** Take q as step st (joining group g, or -1 for none) with the through ops on `path`; undone when `rest` fails. */
  private attempt(q: number, st: StepSpec, g: number, path: readonly number[], rest: () => boolean): boolean {
    const savedThroughs = this.throughs;
    const savedJoin = this.join;
    this.throughs = [...this.throughs, ...path];
    this.picked.set(q, this.roleFor(st, q));
    if (g >= 0) this.join = g;
    if (rest()) return true;
    this.picked.delete(q);
    this.throughs = savedThroughs;
    this.join = savedJoin;
    return false;
  }

  /** Can q be taken by step s? Returns the join group (or -1), or null with a failure recorded. */
  private take(s: StepSpec, q: number): number | null {
    const { pt, rule, join } = this;
    const g = pt.groupOf[q];
    if (g < 0) return -1;
    if (!s.join) return (this.fail('free', `${pt.label(q)} is already in ${pt.groupLabel(g)}`), null);
    if (join >= 0 && join !== g) {
      return (this.fail('free', `${pt.label(q)} is in ${pt.groupLabel(g)}, another group than the one joined`), null);
    }
    if (rule.joinKinds && !rule.joinKinds.includes(pt.groups[g].kind)) {
      return (this.fail('free', `${pt.label(q)} is already in ${pt.groupLabel(g)}`), null);
    }
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
        if (!this.backFrom(s, c, X, v)) {
          picked.clear();
          snapshot.picked.forEach((r, k) => picked.set(k, r));
          this.throughs = snapshot.throughs;
          this.join = snapshot.join;
        }
      }
      return c >= stepMin(step);
    }
    if (s === 0 && c >= stepMax(step)) return canStop;
    for (const v of pt.chainInputs(X, link)) if (this.backFrom(s, c, X, v)) return true;
    if (canStop) return true;
    if (pt.chainInputs(X, link).length === 0) {
      this.fail('missing', `${pt.label(X)} has no activation input for ${steps[Math.max(0, s - 1)].role}`);
    }
    return false;
  }

  /** From X's input v up through its producers: the step that precedes X, past `through` ops. */
  private backFrom(s: number, c: number, X: number, v: number): boolean {
    const { f, pt, steps } = this;
    const path: number[] = [];
    let q = f.producer[v];
    let carried = v;
    while (q >= 0 && f.topLevel[q]) {
      // Everything that reads q's output must end up inside the group.
      const us = pt.users(carried);
      const joinCand = pt.groupOf[q] >= 0 ? pt.groupOf[q] : this.join;
      const outside = us.filter((u) => u !== X && !this.inside(u, path, joinCand));
      if (outside.length || f.graphOutput[carried]) {
        const readers = outside.length ? this.usersNote(outside) : 'the graph output';
        return this.fail('consumers',
          `${pt.name(carried)} (${pt.kindOf(q)}) is also read by ${readers} outside the pattern, so it must be materialised`);
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
        if (why) { this.fail(why.condition, why.message); continue; }
        const rest = () => (g >= 0
          ? this.allOptional(0, t - 1) || this.fail('missing', `joined ${pt.groupLabel(g)} before matching ${steps[0].role}`)
          : this.back(t, t === s ? c + 1 : 1, q));
        if (this.attempt(q, st, g, path, rest)) return true;
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
    const { f, pt, steps } = this;
    const path: number[] = [];
    let cur = X;
    for (;;) {
      const o = pt.vOut(cur);
      if (o < 0 || f.vkind[o] !== VK.Tensor) return this.fail('missing', `${pt.label(cur)} has no tensor output`);
      const us = pt.users(o);
      if (f.graphOutput[o]) {
        return this.fail('consumers', `${pt.name(o)} (${pt.kindOf(cur)}) is a graph output, so it must be materialised`);
      }
      if (us.length === 0) return this.fail('missing', `${pt.name(o)} (${pt.kindOf(cur)}) has no consumer`);
      let Y = us[0];
      if (us.length > 1) {
        const g = pt.groupOf[us[0]];
        if (!(g >= 0 && us.every((u) => pt.groupOf[u] === g))) {
          return this.fail('consumers',
            `${pt.name(o)} (${pt.kindOf(cur)}) is read by ${us.length} nodes (${this.usersNote(us)}), so it must be materialised`);
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
        if (!readsAt(st.in === 'each' ? 'any' : st.in ?? 'input0')) {
          this.fail('op', `${pt.label(Y)} does not read ${pt.name(o)} as its ${st.in ?? 'input0'}`);
          continue;
        }
        if (us.length > 1 && !st.join) { this.fail('consumers', `${pt.name(o)} is read by ${us.length} nodes`); continue; }
        const g = this.take(st, Y);
        if (g === null) continue;
        const why = g >= 0 ? null : this.checkWhere(st, Y);
        if (why) { this.fail(why.condition, why.message); continue; }
        const rest = () => (g >= 0
          ? this.allOptional(t + 1, steps.length - 1) || this.fail('missing', `joined ${pt.groupLabel(g)} before the last step`)
          : this.fwd(t, t === s ? c + 1 : 1, Y));
        if (this.attempt(Y, st, g, path, rest)) return true;
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
