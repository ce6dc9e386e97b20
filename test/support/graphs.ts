// Build a TS graph back into libtorch, run it, and compare with references.
import type { Graph } from '../../lib/core/ir';
import { Module, Tensor, flattenTensors } from '../../lib';
import { fromNativeValue, nativeOf } from '../../lib/torchscript/tensor';
import type { ModelFixture, TensorFile } from '../../lib/app/models';
import { maxAbsDiff, tensorFromFile } from './tensors';

export async function runGraph(module: Module, graph: Graph, inputs: Tensor[]): Promise<Tensor[]> {
  const built = module._native.buildGraph(graph.toData());
  try {
    const r = await built.run(inputs.map(nativeOf));
    return flattenTensors(fromNativeValue(r.output));
  } finally {
    built.dispose();
  }
}

/** Max abs diff of every output against the fixture's references (NaN on a shape mismatch). */
export async function diffAgainst(module: Module, graph: Graph, fx: ModelFixture, outputs: TensorFile[] = fx.outputs): Promise<number[]> {
  const inputs = fx.inputs.map(tensorFromFile);
  const got = await runGraph(module, graph, inputs);
  return outputs.map((ref, i) => (got[i] ? maxAbsDiff(got[i], ref) : NaN));
}
