// What the partitioner publishes (partition.ts): groups, the cores and projection sets it could
// not fuse and why, and refused merges.
import type { Graph, Node, Value } from '../core/ir';
import type { GraphFacts } from '../core/facts';
import type { GroupKind, Rule } from './rules';
import type { CoreReading } from './attention-core';

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
  /**
   * Also fuse inside nested blocks (prim::If branches, loop bodies), each block on its own (default
   * true; memory schedules count top-level groups only).
   */
  nestedBlocks?: boolean;
  /** @internal reuse facts already built for this graph */
  facts?: GraphFacts;
}
