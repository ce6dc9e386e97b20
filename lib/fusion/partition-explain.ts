// What the partitioner could not fuse, and why (partition.ts publishes it): the Q/K/V projection
// set behind each attention core, fused or with the condition that failed, and each attention
// core the explain rules did not group, matched again as if its anchor were free.
import type { Node } from '../core/ir';
import { PARALLEL_CONDITIONS, type ParallelConditionName, type ParallelRule, type Rule } from './rules';
import { PROJECTING_ATTENTION_KINDS } from '../core/ops/classes';
import { VK, isActivation } from '../core/facts';
import type { Grouping } from './grouping';
import { intersects } from './chain-match';
import type { FusionGroup, NotFused, ProjectionSet } from './partition-types';

/** Follow views, casts and scalings back to the linear that produced a q/k/v operand. */
function projectionSource(pt: Grouping, i: number): number {
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

/** The parallel rule the projection sets are explained by: its place in the table and its conditions, checked in order. */
interface ParallelRef { index: number; name: string; where: readonly ParallelConditionName[] }

function explainProjections(pt: Grouping, set: { role: string; p: number }[], rule: ParallelRef): NotFused | null {
  const f = pt.f;
  const nodes = set.map((s) => f.nodes[s.p]);
  const mk = (condition: string, message: string): NotFused => ({ subject: 'projections', rule: rule.name, condition, message, nodes });
  const checks: Record<ParallelConditionName, () => NotFused | null> = {
    sameInput: () => {
      const keys = set.map((s) => { const o = pt.linearOperands(s.p); return o ? pt.tensorKey(o.x) : '?'; });
      const k = keys.findIndex((key) => key !== keys[0]);
      if (k < 0) return null;
      const a = pt.linearOperands(set[0].p)!, b = pt.linearOperands(set[k].p)!;
      return mk('sameInput', `${set[0].role} reads ${pt.name(a.x)} but ${set[k].role} reads ${pt.name(b.x)}: they do not share an input`);
    },
    compatibleWeights: () => {
      const sigs = set.map((s) => pt.weightSignature(s.p));
      const k = sigs.findIndex((sig) => sig !== sigs[0]);
      if (k < 0) return null;
      return mk('compatibleWeights', `${set[0].role} is ${sigs[0]} but ${set[k].role} is ${sigs[k]}: no single GEMM covers both`);
    },
    free: () => {
      const taken = set.find((s) => pt.groupOf[s.p] >= 0 && pt.groups[pt.groupOf[s.p]].ruleIndex <= rule.index);
      return taken ? mk('free', `${taken.role} (${pt.label(taken.p)}) was already taken by ${pt.groupLabel(pt.groupOf[taken.p])}`) : null;
    },
    acyclic: () => {
      const r = pt.refused.find((x) => set.every((s) => x.set.includes(s.p)));
      return r ? mk('acyclic', r.message) : null;
    },
  };
  for (const c of rule.where) {
    const why = checks[c]();
    if (why) return why;
  }
  // Every condition held: a later rule's group took one of them.
  const later = set.find((s) => pt.groupOf[s.p] >= 0);
  return later ? mk('free', `${later.role} (${pt.label(later.p)}) is in ${pt.groupLabel(pt.groupOf[later.p])}`) : null;
}

/** How far an explanation got through the rule's conditions (all of them when it found none failing). */
function conditionsPassed(w: NotFused | null, rule: ParallelRef): number {
  return w ? rule.where.indexOf(w.condition as ParallelConditionName) : rule.where.length;
}

export function attentionLabel(nodes: Node[]): string | undefined {
  for (const n of nodes) {
    const a = n.meta.attention as { id?: unknown } | undefined;
    if (a && typeof a.id === 'string') return a.id;
  }
  return undefined;
}

/** Projection sets of every attention group; fused sets rename their parallel group's kind. */
export function projectionSets(
  pt: Grouping, groups: FusionGroup[], attentionCores: FusionGroup[], rules: readonly Rule[],
): ProjectionSet[] {
  const index = rules.findIndex((r) => r.type === 'parallel');
  const rule = index >= 0 ? rules[index] as ParallelRule : undefined;
  const parallel: ParallelRef = { index, name: rule?.name ?? 'parallel_projection', where: rule?.where ?? PARALLEL_CONDITIONS };
  const projections: ProjectionSet[] = [];
  for (const g of attentionCores) {
    if (PROJECTING_ATTENTION_KINDS.has(g.nodes[0].kind)) {
      projections.push({ attention: g, q: null, k: null, v: null, status: 'inside_op' });
      continue;
    }
    const operands = qkvOperands(pt, g);
    if (!operands) continue;
    projections.push(projectionSet(pt, groups, g, operands, parallel));
  }
  return projections;
}

/** The q, k and v values an attention group reads: an attention op's inputs, or the scores' and context's operands. */
function qkvOperands(pt: Grouping, g: FusionGroup): [number, number, number] | undefined {
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
function projectionSet(pt: Grouping, groups: FusionGroup[], g: FusionGroup, [qv, kv, vv]: [number, number, number],
  parallel: ParallelRef): ProjectionSet {
  const f = pt.f;
  const [sq, sk, sv] = [qv, kv, vv].map((i) => (i >= 0 ? projectionSource(pt, i) : -1));
  const node = (p: number) => (p >= 0 ? f.nodes[p] : null);
  const ps: ProjectionSet = { attention: g, q: node(sq), k: node(sk), v: node(sv), status: 'unknown' };
  if (sq < 0 || sk < 0 || sv < 0) return ps;
  const gq = pt.groupOf[sq], gk = pt.groupOf[sk], gv = pt.groupOf[sv];
  const isParallel = (x: number) => x >= 0 && pt.groups[x].rule === parallel.name;
  if (sq === sk && sk === sv) { ps.status = 'packed'; return ps; }
  if (sk === sv) { ps.status = 'packed_kv'; return ps; }
  if (gq >= 0 && gq === gk && gk === gv && isParallel(gq)) {
    ps.status = 'fused';
    ps.group = groups[gq];
    groups[gq].kind = 'qkv_projection';
    return ps;
  }
  const qShares = pt.tensorKey(pt.linearOperands(sq)!.x) === pt.tensorKey(pt.linearOperands(sk)!.x);
  if (gk >= 0 && gk === gv && isParallel(gk) && !qShares) {
    ps.status = 'kv_fused';
    ps.group = groups[gk];
    groups[gk].kind = 'kv_projection';
    return ps;
  }
  ps.status = 'not_fused';
  const qkv = explainProjections(pt, [{ role: 'q_proj', p: sq }, { role: 'k_proj', p: sk }, { role: 'v_proj', p: sv }], parallel);
  const kvOnly = explainProjections(pt, [{ role: 'k_proj', p: sk }, { role: 'v_proj', p: sv }], parallel);
  let why = conditionsPassed(kvOnly, parallel) > conditionsPassed(qkv, parallel) ? kvOnly : qkv;
  if (!why) {
    why = {
      subject: 'projections', rule: parallel.name, condition: 'free', message: 'the projections are in different groups',
      nodes: [sq, sk, sv].map((p) => f.nodes[p]),
    };
  }
  why.attention = g.label;
  ps.why = why;
  return ps;
}

/** Attention cores the explain rules could not fuse, each with the reason. */
export function unfusedCores(pt: Grouping, rules: readonly Rule[]): NotFused[] {
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
        if (refusal) {
          condition = 'acyclic';
          message = refusal.message;
        } else if (saved >= 0) {
          condition = 'free';
          message = `${pt.label(p)} is already in ${pt.groupLabel(saved)}`;
        } else {
          continue;
        }
      } else {
        ({ condition, message } = r.failure);
      }
      notFused.push({
        subject: 'attention_core', rule: rule.name, condition, message, nodes: [f.nodes[p]], attention: attentionLabel([f.nodes[p]]),
      });
    }
  });
  return notFused;
}
