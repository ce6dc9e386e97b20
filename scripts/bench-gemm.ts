// `npm run bench -- --gemm`: the packed linears' choice of GEMM (lib/fusion/linear-packed.ts) on
// this machine. Each of ViT-B/16's and BERT-base's linear shapes runs as one op in a built graph,
// on torchgraph's own GEMM (torchgraph::linear), oneDNN's (mkldnn::_linear_pointwise) and MKL's
// (aten::linear), interleaved; each op's time comes from libtorch's per-op timing, so the packing
// in the graph is not counted. Prints medians in ms and GFLOP/s, and the GEMM this machine picks.
import { Module } from '../lib';
import { ClassType, Graph, TensorType, type Value } from '../lib/core/ir';
import { OWN_OP_SCHEMAS, LINEAR_KIND, PACK_LINEAR_KIND } from '../lib/core/ops/own-schemas';
import { ensureModel } from '../lib/app/models';
import { median } from '../lib/pipeline/compare';
import { linearKernel } from '../lib/fusion/linear-packed';
import { randomTensor } from '../lib/torchscript/random';
import { nativeOf } from '../lib/torchscript/tensor';
import { runtimeInfo } from '../lib/torchscript/runtime-info';

const T = [{ kind: 'Tensor' as const }];
const KERNELS = { torchgraph: LINEAR_KIND, onednn: 'mkldnn::_linear_pointwise', mkl: 'aten::linear' } as const;
type Kernel = keyof typeof KERNELS;

/** [rows, in, out]: ViT-B/16 b1 (197 tokens) and BERT-base 2x128 (256), QKV, projection, MLP up and down. */
const SHAPES: [number, number, number][] = [
  [197, 768, 2304], [197, 768, 768], [197, 768, 3072], [197, 3072, 768],
  [256, 768, 768], [256, 768, 3072], [256, 3072, 768],
];

/** A graph of (self, x, w, b) -> the linear on `kernel`, its weight packed inside the graph. */
function linearGraph(m: Module, kernel: Kernel, rows: number, out: number): Graph {
  const g = new Graph();
  g.addInput(ClassType(m.tree().type), 'self');
  const [x, w, b] = ['x', 'w', 'b'].map((n) => g.addInput(TensorType, n));
  const none = () => g.insertConstant(null);
  const scalars = () => g.createNode('prim::ListConstruct', [], [{ kind: 'List', elem: { kind: 'Optional', elem: { kind: 'Number' } } }]).output;
  let y: Value;
  if (kernel === 'mkl') {
    y = g.createNode('aten::linear', [x, w, b], T).output;
  } else if (kernel === 'onednn') {
    const p = g.createNode('mkldnn::_reorder_linear_weight', [w, g.insertConstant(BigInt(rows))], T).output;
    y = g.createNode(KERNELS.onednn, [x, p, b, g.insertConstant('none'), scalars(), none()], T).output;
  } else {
    const p = g.createNode(PACK_LINEAR_KIND, [w], T, {}, { schema: OWN_OP_SCHEMAS[PACK_LINEAR_KIND] }).output;
    y = g.createNode(LINEAR_KIND, [x, p, b, g.insertConstant(BigInt(out)), g.insertConstant('none'), scalars(), none()], T, {},
      { schema: OWN_OP_SCHEMAS[LINEAR_KIND] }).output;
  }
  g.setOutputs([y]);
  return g;
}

export async function benchGemm(repetitions = 25): Promise<void> {
  const m = await Module.load((await ensureModel('mha_demo')).variants.traced!);
  const info = runtimeInfo();
  process.stdout.write(`GEMMs for packed linears: ${info.cpuCapability}, ${info.threads} threads; picked here: ${linearKernel()}\n`);
  process.stdout.write('rows x in x out   ' + Object.keys(KERNELS).map((k) => `${k} ms (GFLOP/s)`.padStart(24)).join('') + '\n');
  try {
    for (const [rows, k, n] of SHAPES) {
      const inputs = [randomTensor([rows, k], 'float32', 1), randomTensor([n, k], 'float32', 2), randomTensor([n], 'float32', 3)];
      const built = (Object.keys(KERNELS) as Kernel[]).map((kernel) => ({ kernel, g: m._native.buildGraph(linearGraph(m, kernel, rows, n).toData()) }));
      const times = new Map<Kernel, number[]>(built.map((b) => [b.kernel, []]));
      try {
        const args = inputs.map(nativeOf);
        for (let r = 0; r < repetitions + 2; r++) {
          for (const b of built) {
            const res = await b.g.run(args, { profile: true });
            const op = res.opTimes?.[KERNELS[b.kernel]];
            if (r >= 2 && op) times.get(b.kernel)!.push(op.ms);
          }
        }
      } finally {
        built.forEach((b) => b.g.dispose());
        inputs.forEach((t) => t.dispose());
      }
      const cells = [...times.values()].map((ts) => {
        const ms = median(ts);
        return `${ms.toFixed(3)} (${(2 * rows * k * n / 1e6 / ms).toFixed(0)})`.padStart(24);
      });
      process.stdout.write(`${`${rows} x ${k} x ${n}`.padEnd(17)}${cells.join('')}\n`);
    }
  } finally {
    m.dispose();
  }
}
