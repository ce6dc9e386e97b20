// Fusion partitioning, FLOPs, bytes and the liveness peak-memory estimate.
export {
  analyzeGraph, groupCosts, withMeasuredPeaks, type AnalysisSummary, type AnalyzeOptions, type GraphAnalysis, type GroupCost,
  type PeakComparison,
} from './analyze';
export {
  countFlops, nodeFlops, sdpaFlops, linearFlops, FLOP_CATEGORIES, type FlopCategory, type FlopsReport, type SdpaDims,
} from './flops';
export {
  cpuFlashAttentionWorkspace, estimateMemory, type LiveStorage, type MemoryEstimate, type MemoryOptions, type SdpaWorkspaceQuery,
  type TimelineEntry,
} from './memory';
export {
  partitionGraph, mergeWouldCycle, type FusionGroup, type NotFused, type Partition, type PartitionOptions, type ProjectionSet,
  type ProjectionStatus, type RefusedMerge,
} from '../fusion/partition';
export {
  RULES, CONDITIONS, ruleByName, type ChainRule, type ParallelRule, type Rule, type StepSpec, type GroupKind, type Link,
} from '../fusion/rules';
export { canView, isContiguous, type OpClass } from '../core/ops/classes';
export { buildFacts, type GraphFacts, type NodeRole } from '../core/facts';
