// Max pooling over channels-last activations as an op of our own, torchgraph::max_pool2d
// (native/fused_ops.cc): ATen's max_pool2d computes the index of every maximum on the way and
// drops it, and on a channels-last input (a pointwise convolution's output, conv-pointwise.ts) it
// ran 0.56 ms of ResNet-18's 21.3 ms at batch 2 against onnxruntime's 0.18 ms; ours reads each
// window once per block of 64 channels and writes the maxima only (0.16 ms). The same op serves
// aten::max_pool2d_with_indices whose indices nothing reads. Machine-specific (lowerings.ts): a
// saved model keeps the ATen op.
import type { Graph, Node, Value } from '../core/ir';
import { tensorInfo } from '../core/value-info';
import { isChannelsLastContiguous, POINTWISE_CONV_KINDS } from '../core/ops/classes';
import { OWN_OP_SCHEMAS, MAX_POOL_KIND } from '../core/ops/own-schemas';
import { Emitter } from '../transforms/emit';
import { outcomeId, type LoweringOutcome } from './lower-fused';
import type { LoweringPass, OwnedPass } from './lowering-pass';

const POOLS = new Set(['aten::max_pool2d', 'aten::max_pool2d_with_indices']);

/** Why `pool` stays on ATen, or undefined when ours takes it. */
function refusal(pool: Node, device: string): string | undefined {
  if (device !== 'cpu') return `the kernel runs on CPU, not ${device}`;
  if (pool.kind === 'aten::max_pool2d_with_indices' && pool.outputs[1]?.uses.length) return 'its indices are read';
  const input = pool.arg('self')!;
  // A pointwise convolution writes float32 channels last by construction (conv-pointwise.ts);
  // optimize()'s run graph has no shapes recorded for the ones it put there.
  if (input.node && POINTWISE_CONV_KINDS.has(input.node.kind)) return undefined;
  const x = tensorInfo(input);
  if (!x) return 'its input has no recorded shape';
  if (x.dtype !== 'float32') return `its input is ${x.dtype}, not float32`;
  if (x.shape.length !== 4) return 'its input is not 4-D (N, C, H, W)';
  if (!isChannelsLastContiguous(x.shape, x.strides)) return 'its input is not channels last (ATen\'s kernel is as fast there)';
  return undefined;
}

/** Every max_pool2d of `g` over a channels-last float32 input as torchgraph::max_pool2d; an outcome for each max pool. */
export function lowerMaxPools(g: Graph, device: string): LoweringOutcome[] {
  const outcomes: LoweringOutcome[] = [];
  for (const pool of g.allNodes()) {
    if (pool.isDestroyed || !POOLS.has(pool.kind)) continue;
    const id = outcomeId(pool);
    const reason = refusal(pool, device);
    if (reason) { outcomes.push({ id, lowered: false, reason }); continue; }
    const em = new Emitter(g, pool, { id, scope: pool.scope, attention: false });
    // By name, with the schema's defaults where a graph left an argument out.
    const args: Value[] = [pool.arg('self')!, pool.arg('kernel_size')!, pool.arg('stride') ?? em.intList([]),
      pool.arg('padding') ?? em.intList([0]), pool.arg('dilation') ?? em.intList([1]), pool.arg('ceil_mode') ?? em.constant(false)];
    const ours = g.withInsertPoint(pool, () => g.createNode(MAX_POOL_KIND, args, [{ kind: 'Tensor' }], {},
      { scope: pool.scope, schema: OWN_OP_SCHEMAS[MAX_POOL_KIND] }));
    for (const n of [...em.emitted, ours]) n.meta.fused = { kind: 'max_pool', id };
    pool.outputs[0].replaceAllUsesWith(ours.output);
    pool.destroy();
    outcomes.push({ id, lowered: true });
  }
  return outcomes;
}

/** prepareGraphs' step: after the convolutions' lowering made their outputs channels last, shapes propagated first. */
export async function maxPoolsStep(pass: LoweringPass): Promise<void> {
  if (!pass.graph.allNodes().some((n) => POOLS.has(n.kind))) return;
  await pass.propagateShapes(pass.graph);
  pass.lowering.maxPools = lowerMaxPools(pass.graph, pass.device);
}

/** optimize's step: the run graph only (save() writes the portable one, with the ATen op). */
export function maxPoolsOnOwnedModule(pass: OwnedPass): Promise<void> {
  pass.lowering.maxPools = lowerMaxPools(pass.run, pass.module.device);
  return Promise.resolve();
}
