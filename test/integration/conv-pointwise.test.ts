// Convolutions on oneDNN's pointwise kernels over prepacked weights (lib/fusion/conv-pointwise.ts)
// and the layouts put back where channels-last values leave them (lib/fusion/channels-last.ts).
// A user's CNN exported by `torchgraph export` (traced and scripted) carries every activation
// oneDNN has a post-op for, residual adds, grouped, strided, dilated and bias-free convolutions,
// random batch norm statistics and a view that refuses channels-last strides: the fused graph
// must equal the original, with its measured peak as estimated. All of it on either kernel for
// the stems (few input channels): oneDNN's, or torchgraph::conv2d.
import { strict as assert } from 'assert';
import { userModel } from '../support/user-model';
import { Module } from '../../lib/torchscript/module';
import { prepareGraphs } from '../../lib/pipeline/prepare';
import { compareGraphs } from '../../lib/pipeline/compare';
import { randomTensor } from '../../lib/torchscript/random';
import { ensureModel, type ModelName } from '../../lib/app/models';
import type { Graph } from '../../lib/core/ir';
import { constOf } from '../../lib/core/constants';
import { CONV2D_KIND } from '../../lib/core/ops/own-schemas';
import { onEachKernel } from '../support/kernel-env';
import { countFlops } from '../../lib/analysis';

const MODEL_PY = `import torch
from torch import nn


def conv_bn(cin, cout, k=3, stride=1, groups=1, dilation=1, bias=False):
    bn = nn.BatchNorm2d(cout)
    bn.running_mean.uniform_(-0.5, 0.5)
    bn.running_var.uniform_(0.5, 2.0)
    bn.weight.data.uniform_(0.5, 1.5)
    bn.bias.data.uniform_(-0.5, 0.5)
    pad = dilation * (k // 2)
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, pad, dilation=dilation, groups=groups, bias=bias), bn)


class Acts(nn.Module):
    """One convolution per activation oneDNN applies as a post-op, then residual blocks."""
    def __init__(self):
        super().__init__()
        acts = [nn.ReLU(), nn.ReLU6(), nn.GELU(), nn.GELU(approximate="tanh"), nn.SiLU(), nn.Sigmoid(), nn.Tanh(),
                nn.Hardswish(), nn.Hardsigmoid(), nn.Hardtanh(-1.0, 2.0), nn.LeakyReLU(0.2), nn.ELU()]
        self.stem = nn.Sequential(conv_bn(3, 12, k=3, stride=2), nn.ReLU())
        self.acts = nn.ModuleList([nn.Sequential(conv_bn(12, 12, groups=g, dilation=d, bias=b), a)
                                   for a, g, d, b in zip(acts, [1, 3, 12, 1] * 3, [1, 1, 1, 2] * 3, [True, False] * 6)])
        self.down = conv_bn(12, 24, k=1, stride=2)
        self.body = conv_bn(12, 24, stride=2)
        self.body2 = nn.Conv2d(24, 24, 3, 1, 1)
        self.relu = nn.ReLU()
        self.head = nn.Linear(24 * 8 * 8, 10)

    def forward(self, x):
        x = self.stem(x)
        for a in self.acts:
            x = a(x) + x * 0.5
        y = self.relu(self.body(x) + self.down(x))
        y = self.relu(self.body2(y) + y)
        return self.head(y.view(y.size(0), -1)), y


class InPlace(nn.Module):
    """A convolution output changed in place by an op that does not keep channels last."""
    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())

    def forward(self, x):
        y = self.conv(x)
        y.exp_()
        return y


class ViewWrite(nn.Module):
    """A convolution output written through a view of it: a copy at the view would lose the write."""
    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())

    def forward(self, x):
        y = self.conv(x)
        y[:, :4].mul_(2.0)
        return y


class WriteBetween(nn.Module):
    """The convolution's input written in place between the convolution and its residual add."""
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x):
        h = x * 1.0
        y = self.conv(h)
        h.mul_(2.0)
        return torch.relu(y + h)


def make():
    torch.manual_seed(0)
    return Acts().eval()


def make_write_between():
    torch.manual_seed(0)
    return WriteBetween().eval()


def make_view_write():
    torch.manual_seed(0)
    return ViewWrite().eval()


def make_in_place():
    torch.manual_seed(0)
    return InPlace().eval()
`;

const count = (g: Graph, kind: string) => g.allNodes().filter((n) => n.kind === kind).length;
const CONVS = ['mkldnn::_convolution_pointwise', 'mkldnn::_convolution_pointwise_', CONV2D_KIND];
/** The lowered convolutions: oneDNN's (plain and in place) and ours. */
const lowered = (g: Graph) => CONVS.reduce((a, k) => a + count(g, k), 0);
const pointwiseAttrs = (g: Graph) => g.allNodes().filter((n) => n.kind === 'mkldnn::_convolution_pointwise' || n.kind === CONV2D_KIND)
  .map((n) => String(constOf((n.arg('attr') ?? n.arg('unary_attr'))!) ?? 'none'));

async function fusedVsOriginal(file: string, shape: number[]) {
  const m = await Module.load(file);
  const specs = [{ shape, dtype: 'float32' as const }];
  const x = randomTensor(shape, 'float32', 3);
  try {
    const p = await prepareGraphs(m, specs);
    const cmp = await compareGraphs(m, { unfused: p.decomposed, fused: p.fused }, [x], { warmup: 1, repetitions: 1 });
    return { p, cmp, off: await prepareGraphs(m, specs, { pointwiseConvolutions: false }) };
  } finally {
    x.dispose();
    m.dispose();
  }
}

onEachKernel('TORCHGRAPH_CONV_KERNEL', (k) => `stems on ${k === 'onednn' ? 'oneDNN' : 'torchgraph::conv2d'}`, (kernel) => describe(
  'convolutions on pointwise kernels', function () {
    this.timeout(600_000);
    const user = userModel(MODEL_PY, 'convpw');

    for (const how of ['traced', 'scripted'] as const) {
      it(`${how}: every activation's post-op equals PyTorch, residual adds fused, the view still works`, async () => {
        const { p, cmp, off } = await fusedVsOriginal(user.exportAs(how, 'make', '2x3x32x32', how), [2, 3, 32, 32]);
        const convs = p.lowering.convolutions ?? [];
        assert.equal(convs.filter((c) => !c.lowered).length, 0, JSON.stringify(convs.filter((c) => !c.lowered)));
        assert.equal(lowered(p.fused), 16, 'stem, 12 activations, body, down, body2');
        assert.equal(count(p.fused, CONV2D_KIND), kernel === 'torchgraph' ? 1 : 0, 'the stem (3 input channels) on the kernel picked');
        // body's sum written into down's output (dead there); not body2's: y is its input as well as its skip connection.
        assert.equal(count(p.fused, 'mkldnn::_convolution_pointwise_'), 1, 'one residual sum in place');
        const attrs = pointwiseAttrs(p.fused);
        for (const a of ['relu', 'hardtanh', 'gelu', 'swish', 'sigmoid', 'tanh', 'hardswish', 'hardsigmoid', 'leaky_relu']) assert.ok(attrs.includes(a), `${a} in ${attrs}`);
        assert.equal(count(p.fused, 'aten::elu'), 1, 'ELU has no post-op: it stays after a plain pointwise convolution');
        assert.ok(count(p.fused, 'aten::contiguous') >= 1, 'the view and the outputs read contiguous copies');
        assert.equal(lowered(off.fused), 0, 'pointwiseConvolutions: false keeps the convolutions');
        for (const run of [cmp.runs.fused]) assert.ok(run.maxAbsDiff !== null && run.maxAbsDiff <= 1e-4, `fused max abs diff ${run.maxAbsDiff}`);
        assert.ok(p.lowering.heldWeightBytes > 0, 'the prepacked weights are held by the fused graph');
      });
    }

    it('a convolution output written in place by an op that does not keep channels last: left as it was, with the reason', async () => {
      const { p, cmp } = await fusedVsOriginal(user.exportAs('inplace', 'make_in_place', '1x3x16x16'), [1, 3, 16, 16]);
      assert.equal(lowered(p.fused), 0);
      assert.match(p.lowering.convolutions!.map((c) => c.reason).join(), /cannot stay channels last: aten::exp_ writes a channels-last value in place/);
      assert.equal(cmp.runs.fused.maxAbsDiff, 0);
    });

    it('a convolution output written through a view of it: left as it was, with the reason', async () => {
      const { p, cmp } = await fusedVsOriginal(user.exportAs('viewwrite', 'make_view_write', '1x3x16x16'), [1, 3, 16, 16]);
      assert.equal(lowered(p.fused), 0);
      assert.match(p.lowering.convolutions!.map((c) => c.reason).join(), /cannot stay channels last: .* written in place later/);
      assert.equal(cmp.runs.fused.maxAbsDiff, 0);
    });

    it('the convolution\'s input written in place before its residual add: that convolution keeps its own op, outputs equal', async () => {
      const { p, cmp } = await fusedVsOriginal(user.exportAs('between', 'make_write_between', '1x8x16x16'), [1, 8, 16, 16]);
      assert.match(p.lowering.convolutions!.map((c) => c.reason).join(), /aten::mul_ between the convolution and its post-ops writes one of their inputs/);
      assert.ok(cmp.runs.fused.maxAbsDiff !== null && cmp.runs.fused.maxAbsDiff <= 1e-5, `fused max abs diff ${cmp.runs.fused.maxAbsDiff}`);
    });

    for (const name of ['small_cnn_resnet', 'small_cnn_mbconv'] as ModelName[]) {
      it(`${name}: every convolution lowered, the measured peak as estimated`, async () => {
        const fx = await ensureModel(name);
        const shape = fx.inputs[0].shape;
        const { p, cmp } = await fusedVsOriginal(fx.variants.traced!, shape);
        assert.ok((p.lowering.convolutions ?? []).length > 0 && p.lowering.convolutions!.every((c) => c.lowered), JSON.stringify(p.lowering.convolutions));
        assert.equal(count(p.fused, 'aten::_convolution') + count(p.fused, 'aten::conv2d'), 0);
        assert.ok(cmp.runs.fused.maxAbsDiff !== null && cmp.runs.fused.maxAbsDiff <= 1e-5, `fused max abs diff ${cmp.runs.fused.maxAbsDiff}`);
        // The same convolutions counted in both (those writing their residual sum in place too), the fused ones with the
        // bias their folded batch norm left: between the unfused convolutions and those plus the batch norms.
        const [fused, unfused] = [countFlops(p.fused).byCategory, countFlops(p.decomposed).byCategory];
        assert.ok(fused.conv >= unfused.conv && fused.conv <= unfused.conv + unfused.norm, `conv FLOPs: fused ${fused.conv}, unfused ${unfused.conv}`);
        const measured = cmp.runs.fused.peakBytes, estimated = p.estimates.fused.peakBytes;
        assert.equal(measured, estimated, `fused peak measured ${measured} B, estimated ${estimated} B`);
      });
    }
  }));
