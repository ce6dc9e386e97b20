// The fusion rules, as data. One matcher (partition.ts) interprets them.
//
// A chain rule is a path of steps through the graph: each step names the op classes it accepts
// (classes already see through spellings: bmm/mm/matmul are 'matmul'; mul by 1/s and div by s
// are 'scale'; masked_fill, where and add of a mask are 'mask'; view/reshape/permute/transpose
// are 'layout'), how many times it may repeat (min/max), which input of its node carries the
// chain ('input0', 'any', or 'each' = every input independently, for optional leading steps),
// and named conditions. Matching starts at the anchor step and walks producers backwards and
// consumers forwards; ops of the `through` classes may sit between steps and join the group.
// Every value that would become internal must be read only inside the group (else it would be
// materialised anyway, e.g. attention weights that are returned).
//
// A parallel rule groups ops that read the same tensor (seen through identical view chains)
// and pass its conditions.
//
// Rules run in table order; a node belongs to one group. A step marked `join` may match a node
// already grouped (of a kind in joinKinds, when given): the match then joins that group.
import type { GraphFacts } from '../core/facts';
import { isActivation, VK } from '../core/facts';
import { constNumber } from '../core/constants';
import { sameShape, type OpClass } from '../core/ops/classes';

export type GroupKind =
  | 'attention'        // attention core: [scale] matmul [scale|mask]* softmax [dropout] matmul [merge], or an attention op
  | 'qkv_projection'   // 3-way parallel projections feeding one attention as q, k, v
  | 'kv_projection'    // 2-way parallel projections feeding one attention as k, v (cross-attention)
  | 'parallel_linear'  // other linears sharing an input (e.g. gate/up projections)
  | 'conv_bn_act'
  | 'linear_act'
  | 'norm_linear'
  | 'residual'
  | 'elementwise';

export type Link = 'input0' | 'any' | 'each';

export interface StepSpec {
  role: string;
  ops: readonly OpClass[];
  /** Default 1. */
  min?: number;
  /** Default 1. */
  max?: number;
  /** Which inputs of this step's node carry the chain from the step before it. Default 'input0'. */
  in?: Link;
  where?: readonly ConditionName[];
  join?: boolean;
}

/** How many times a step may match: at least min (default 1), at most max (default 1). */
export const stepMin = (s: StepSpec) => s.min ?? 1;
export const stepMax = (s: StepSpec) => s.max ?? 1;

export interface ChainRule {
  type: 'chain';
  name: string;
  kind: GroupKind;
  description: string;
  steps: readonly StepSpec[];
  /** Index of the step matching starts from. */
  anchor: number;
  through?: readonly OpClass[];
  /** Fewest step nodes (through nodes and joined members not counted). Default 2. */
  minSteps?: number;
  joinKinds?: readonly GroupKind[];
  /** Explain failures of this rule for every node its anchor step accepts (attention cores). */
  explain?: boolean;
}

export interface ParallelRule {
  type: 'parallel';
  name: string;
  kind: GroupKind;
  description: string;
  ops: readonly OpClass[];
  min: number;
  where: readonly ParallelConditionName[];
}

export type Rule = ChainRule | ParallelRule;

// ---- conditions ------------------------------------------------------------------------------

/** A node condition: null when it holds, else why not. */
export type Condition = (f: GraphFacts, p: number) => string | null;

const inIdx = (f: GraphFacts, p: number, k: number) => { const v = f.nodes[p].inputs[k]; return v ? f.vindex.get(v) ?? -1 : -1; };
const outIdx = (f: GraphFacts, p: number) => { const v = f.nodes[p].outputs[0]; return v ? f.vindex.get(v) ?? -1 : -1; };

export const CONDITIONS = {
  /** softmax over the last dim (dim -1 or rank-1). */
  softmaxLastDim: (f, p) => {
    const n = f.nodes[p];
    const dim = constNumber(n.arg('dim'));
    const x = f.info[inIdx(f, p, 0)];
    if (dim === undefined) return 'softmax dim is not a constant';
    if (dim === -1 || (x && dim === x.shape.length - 1)) return null;
    return `softmax over dim ${dim}, not the last dim${x ? ` of a rank-${x.shape.length} tensor` : ''}`;
  },
  /** A matmul of two activations (neither operand is a weight). */
  activationOperands: (f, p) => {
    const n = f.nodes[p];
    const first = n.kind === 'aten::baddbmm' || n.kind === 'aten::addbmm' ? 1 : 0;
    for (const k of [first, first + 1]) {
      const i = inIdx(f, p, k);
      if (i >= 0 && f.weight[i]) {
        return `operand ${k} (%${n.inputs[k].debugName}) is a weight, so this is a projection, not attention scores`;
      }
    }
    return null;
  },
  /** The node computes something (not a view or an eval-mode dropout, which return their input). */
  computes: (f, p) => (f.role[p] === 'compute' ? null : `${f.nodes[p].kind} returns (a view of) its input`),
  /** add/sub of two activations of the output's shape (no broadcasting, neither a weight). */
  residualAdd: (f, p) => {
    const n = f.nodes[p];
    const o = f.info[outIdx(f, p)];
    for (const k of [0, 1]) {
      const i = inIdx(f, p, k);
      if (i < 0 || f.vkind[i] !== VK.Tensor) return `operand ${k} is not a tensor`;
      if (!isActivation(f, i)) {
        return `operand ${k} (%${n.inputs[k].debugName}) is ${f.weight[i] ? 'a weight' : 'a scalar'}, not a skip connection`;
      }
      const s = f.info[i];
      if (s && o && !sameShape(s.shape, o.shape)) return `operand ${k} broadcasts ([${s.shape}] to [${o.shape}])`;
    }
    return null;
  },
} satisfies Record<string, Condition>;

export type ConditionName = keyof typeof CONDITIONS;

/** Parallel-rule conditions (PARALLEL_CONDITIONS gives the order they are checked in). */
export type ParallelConditionName = 'free' | 'sameInput' | 'compatibleWeights' | 'acyclic';
/** A parallel rule's conditions in the order a miss is explained by (partition-explain.ts): the first that fails is the reason. */
export const PARALLEL_CONDITIONS: readonly ParallelConditionName[] = ['sameInput', 'compatibleWeights', 'free', 'acyclic'];

// ---- the table -------------------------------------------------------------------------------

const LAYOUT: readonly OpClass[] = ['layout'];
const COMPUTE: readonly OpClass[] = [
  'linear', 'matmul', 'conv', 'attention', 'norm', 'batchnorm', 'softmax', 'elementwise', 'reduction', 'pool', 'copy', 'other',
];

export const RULES: readonly Rule[] = [
  {
    type: 'chain', name: 'attention_op', kind: 'attention', anchor: 0, minSteps: 1,
    description: 'an attention op (scaled_dot_product_attention, _native_multi_head_attention) with the head merge after it',
    steps: [
      { role: 'attention', ops: ['attention'] },
      { role: 'merge', ops: LAYOUT, min: 0, max: 4 },
    ],
  },
  {
    type: 'chain', name: 'attention_core', kind: 'attention', anchor: 3, explain: true,
    description: '[scale q/k] Q.K^T [scale | mask]* softmax(-1) [dropout] .V [head merge]: one kernel (SDPA), dropout included',
    through: ['layout', 'cast'],
    steps: [
      { role: 'scale', ops: ['scale'], min: 0, max: 1 },
      { role: 'scores', ops: ['matmul'], in: 'each', where: ['activationOperands'] },
      { role: 'adjust', ops: ['scale', 'mask'], min: 0, max: 4, in: 'any' },
      { role: 'softmax', ops: ['softmax'], where: ['softmaxLastDim'] },
      { role: 'dropout', ops: ['dropout'], min: 0, max: 1 },
      { role: 'context', ops: ['matmul'], where: ['activationOperands'] },
      { role: 'merge', ops: LAYOUT, min: 0, max: 4 },
    ],
  },
  {
    type: 'parallel', name: 'parallel_projection', kind: 'parallel_linear', ops: ['linear'], min: 2,
    description: 'linears reading the same tensor with compatible weights: one GEMM over concatenated weights (Q/K/V, K/V, gate/up)',
    where: PARALLEL_CONDITIONS,
  },
  {
    type: 'chain', name: 'conv_bn_act', kind: 'conv_bn_act', anchor: 0,
    description: 'convolution, then batch norm, the residual add and/or activation (oneDNN post-ops on the convolution\'s output)',
    steps: [
      { role: 'conv', ops: ['conv'] },
      { role: 'bn', ops: ['batchnorm'], min: 0 },
      { role: 'residual', ops: ['add'], min: 0, in: 'any', where: ['residualAdd'] },
      { role: 'act', ops: ['act'], min: 0 },
    ],
  },
  {
    type: 'chain', name: 'linear_act', kind: 'linear_act', anchor: 0, through: LAYOUT,
    description: 'linear (bias included), then activation and/or dropout',
    steps: [
      { role: 'linear', ops: ['linear'] },
      { role: 'act', ops: ['act'], min: 0 },
      { role: 'dropout', ops: ['dropout'], min: 0 },
    ],
  },
  {
    type: 'chain', name: 'layernorm_linear', kind: 'norm_linear', anchor: 0, through: LAYOUT,
    description: 'a norm whose output is read only by linear(s): normalise while loading the GEMM input',
    steps: [
      { role: 'norm', ops: ['norm'] },
      { role: 'linear', ops: ['linear'], join: true },
    ],
  },
  {
    type: 'chain', name: 'residual_add', kind: 'residual', anchor: 1, through: ['layout', 'dropout'],
    description: 'add of a skip connection as the epilogue of the op producing the other operand',
    steps: [
      { role: 'producer', ops: COMPUTE, join: true, where: ['computes'] },
      { role: 'add', ops: ['add'], in: 'any', where: ['residualAdd'] },
    ],
  },
  {
    type: 'chain', name: 'elementwise_chain', kind: 'elementwise', anchor: 0, joinKinds: ['elementwise'],
    description: 'elementwise ops in a chain, each result read only by the next',
    steps: [
      { role: 'op', ops: ['elementwise'] },
      { role: 'op', ops: ['elementwise'], min: 1, max: 64, in: 'any', join: true },
    ],
  },
];

export function ruleByName(name: string, rules: readonly Rule[] = RULES): Rule | undefined {
  return rules.find((r) => r.name === name);
}
