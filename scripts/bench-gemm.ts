// `npm run bench -- --gemm`: the packed linears' choice of GEMM (lib/fusion/linear-packed.ts) on
// this machine. Each of ViT-B/16's and BERT-base's linear shapes runs as one op in a built graph,
// on torchgraph's own GEMM (torchgraph::linear), oneDNN's (mkldnn::_linear_pointwise) and MKL's
// (aten::linear), interleaved; each op's time comes from libtorch's per-op timing, so the packing
// in the graph is not counted. Then the same for image stems (few input channels) on
// torchgraph::conv2d and oneDNN's pointwise convolution (lib/fusion/conv-pointwise.ts), and for
// ResNet-18's 3x3 body convolutions, which stay on oneDNN: the row says by how much. Prints
// medians in ms and GFLOP/s, and the kernels this machine picks.
import { Module } from '../lib';
import { ClassType, Graph, TensorType, type Value } from '../lib/core/ir';
import { OWN_OP_SCHEMAS, LINEAR_KIND, PACK_LINEAR_KIND, CONV2D_KIND, PACK_CONV2D_KIND } from '../lib/core/ops/own-schemas';
import { ensureModel } from '../lib/app/models';
import { median } from '../lib/pipeline/compare';
import { linearKernel } from '../lib/fusion/linear-packed';
import { convKernel } from '../lib/fusion/conv-pointwise';
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

const CONV_KERNELS = { torchgraph: CONV2D_KIND, onednn: 'mkldnn::_convolution_pointwise' } as const;
type ConvKernel = keyof typeof CONV_KERNELS;

/**
 * [input shape, out channels, kernel, stride, padding]: image stems (few input channels, the
 * image NCHW as a graph gets it), then ResNet-18's body at batch 2 (channels last, as the
 * convolution before it writes them).
 */
const CONVS: [number[], number, number, number, number][] = [
  [[2, 3, 224, 224], 64, 7, 2, 3], // ResNet's stem, batch 2
  [[1, 3, 224, 224], 32, 3, 2, 1], // MobileNet's and EfficientNet's stem
  [[1, 3, 224, 224], 768, 16, 16, 0], // ViT-B/16's patches
  [[2, 64, 56, 56], 64, 3, 1, 1],
  [[2, 64, 56, 56], 128, 3, 2, 1],
  [[2, 256, 14, 14], 256, 3, 1, 1],
  [[2, 512, 7, 7], 512, 3, 1, 1],
];

const isStem = (inputShape: number[]) => inputShape[1] <= 4;

/** A graph of (self, x, w, b) -> the convolution (relu after it) on `kernel`, its weight packed inside the graph. */
function convGraph(m: Module, kernel: ConvKernel, [x0, out, k, stride, padding]: (typeof CONVS)[number]): Graph {
  const g = new Graph();
  g.addInput(ClassType(m.tree().type), 'self');
  const [image, w, b] = ['x', 'w', 'b'].map((n) => g.addInput(TensorType, n));
  // torch.channels_last is 2 in a TorchScript graph's memory_format argument.
  const x = isStem(x0) ? image : g.createNode('aten::contiguous', [image, g.insertConstant(2n)], T).output;
  const ints = (xs: number[]) => g.createNode('prim::ListConstruct', xs.map((v) => g.insertConstant(BigInt(v))),
    [{ kind: 'List', elem: { kind: 'Int' } }]).output;
  const scalars = () => g.createNode('prim::ListConstruct', [], [{ kind: 'List', elem: { kind: 'Optional', elem: { kind: 'Number' } } }]).output;
  let y: Value;
  if (kernel === 'onednn') {
    const p = g.createNode('mkldnn::_reorder_convolution_weight', [w, ints([padding, padding]), ints([stride, stride]), ints([1, 1]),
      g.insertConstant(1n), ints(x0)], T).output;
    y = g.createNode(CONV_KERNELS.onednn, [x, p, b, ints([padding, padding]), ints([stride, stride]), ints([1, 1]), g.insertConstant(1n),
      g.insertConstant('relu'), scalars(), g.insertConstant(null)], T).output;
  } else {
    const p = g.createNode(PACK_CONV2D_KIND, [w], T, {}, { schema: OWN_OP_SCHEMAS[PACK_CONV2D_KIND] }).output;
    y = g.createNode(CONV2D_KIND, [x, p, b, g.insertConstant(BigInt(out)), ints([k, k]), ints([padding, padding]), ints([stride, stride]),
      g.insertConstant('relu'), scalars(), g.insertConstant(null)], T, {}, { schema: OWN_OP_SCHEMAS[CONV2D_KIND] }).output;
  }
  g.setOutputs([y]);
  return g;
}

/** Per-op medians (ms) of each graph, run interleaved on the same inputs; the first 2 runs are warm-up. */
async function interleavedOpTimes<K extends string>(
  m: Module, graphs: [K, Graph][], op: (k: K) => string, inputs: ReturnType<typeof randomTensor>[], repetitions: number,
): Promise<Map<K, number>> {
  const built = graphs.map(([kernel, graph]) => ({ kernel, g: m._native.buildGraph(graph.toData()) }));
  const times = new Map<K, number[]>(built.map((b) => [b.kernel, []]));
  try {
    const args = inputs.map(nativeOf);
    for (let r = 0; r < repetitions + 2; r++) {
      for (const b of built) {
        const res = await b.g.run(args, { profile: true });
        const t = res.opTimes?.[op(b.kernel)];
        if (r >= 2 && t) times.get(b.kernel)!.push(t.ms);
      }
    }
  } finally {
    built.forEach((b) => b.g.dispose());
  }
  return new Map([...times].map(([k, ts]) => [k, median(ts)]));
}

async function benchConvs(m: Module, repetitions: number): Promise<void> {
  process.stdout.write(`\nconvolutions: stems (few input channels; picked here: ${convKernel()}), then ResNet-18's body (oneDNN's)\n`);
  process.stdout.write('input -> out, kernel/stride   ' + Object.keys(CONV_KERNELS).map((k) => `${k} ms (GFLOP/s)`.padStart(24)).join('') + '\n');
  for (const c of CONVS) {
    const [x0, out, k, stride, padding] = c;
    const inputs = [randomTensor(x0, 'float32', 1), randomTensor([out, x0[1], k, k], 'float32', 2), randomTensor([out], 'float32', 3)];
    try {
      const kernels = Object.keys(CONV_KERNELS) as ConvKernel[];
      const ms = await interleavedOpTimes(m, kernels.map((kernel) => [kernel, convGraph(m, kernel, c)]), (kk) => CONV_KERNELS[kk], inputs, repetitions);
      const side = (d: number) => Math.floor((d + 2 * padding - k) / stride) + 1;
      const macs = x0[0] * out * side(x0[2]) * side(x0[3]) * x0[1] * k * k;
      const cells = kernels.map((kk) => `${ms.get(kk)!.toFixed(3)} (${(2 * macs / 1e6 / ms.get(kk)!).toFixed(0)})`.padStart(24));
      process.stdout.write(`${`${x0.join('x')} -> ${out}, ${k}/${stride}`.padEnd(30)}${cells.join('')}\n`);
    } finally {
      inputs.forEach((t) => t.dispose());
    }
  }
}

export async function benchGemm(repetitions = 25): Promise<void> {
  const m = await Module.load((await ensureModel('mha_demo')).variants.traced!);
  const info = runtimeInfo();
  process.stdout.write(`GEMMs for packed linears: ${info.cpuCapability}, ${info.threads} threads; picked here: ${linearKernel()}\n`);
  process.stdout.write('rows x in x out   ' + Object.keys(KERNELS).map((k) => `${k} ms (GFLOP/s)`.padStart(24)).join('') + '\n');
  try {
    for (const [rows, k, n] of SHAPES) {
      const inputs = [randomTensor([rows, k], 'float32', 1), randomTensor([n, k], 'float32', 2), randomTensor([n], 'float32', 3)];
      try {
        const kernels = Object.keys(KERNELS) as Kernel[];
        const ms = await interleavedOpTimes(m, kernels.map((kernel) => [kernel, linearGraph(m, kernel, rows, n)]), (kk) => KERNELS[kk],
          inputs, repetitions);
        const cells = kernels.map((kk) => `${ms.get(kk)!.toFixed(3)} (${(2 * rows * k * n / 1e6 / ms.get(kk)!).toFixed(0)})`.padStart(24));
        process.stdout.write(`${`${rows} x ${k} x ${n}`.padEnd(17)}${cells.join('')}\n`);
      } finally {
        inputs.forEach((t) => t.dispose());
      }
    }
    await benchConvs(m, repetitions);
  } finally {
    m.dispose();
  }
}
