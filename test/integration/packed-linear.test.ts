// Linear layers on packed weights (lib/fusion/linear-packed.ts), on each GEMM it picks from
// (oneDNN's, torchgraph's own: TORCHGRAPH_LINEAR_KERNEL forces one), and activations / residual
// adds in place where their input dies (lib/fusion/in-place.ts), on a user's module exported by
// `torchgraph export` (traced and scripted): nn.Linear with and without bias, a GPT-2-style
// Conv1D (addmm over an (in, out) weight), a weight computed from the input (left alone), a
// GELU whose input is read again afterwards (must not be overwritten), and skip connections; then
// every activation oneDNN applies as the packed linear's post-op, behind a view (Conv1D) or not.
import { strict as assert } from 'assert';
import { packedLinearOp } from '../../lib/fusion/linear-packed';
import { userModel } from '../support/user-model';
import { onEachKernel } from '../support/kernel-env';
import { Module } from '../../lib/torchscript/module';
import { prepareGraphs } from '../../lib/pipeline/prepare';
import { compareGraphs } from '../../lib/pipeline/compare';
import { randomTensor } from '../../lib/torchscript/random';
import type { Graph } from '../../lib/core/ir';

const MODEL_PY = `import torch
from torch import nn


class Conv1D(nn.Module):
    """transformers.pytorch_utils.Conv1D: a linear whose weight is laid out (in, out)."""
    def __init__(self, nf, nx):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(nx, nf) * 0.02)
        self.bias = nn.Parameter(torch.randn(nf) * 0.5)

    def forward(self, x):
        size_out = list(x.size()[:-1]) + [self.weight.size(-1)]
        x = torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight)
        return x.view(size_out)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(256, 512)
        self.fc2 = nn.Linear(512, 256, bias=False)
        self.proj = Conv1D(256, 256)
        self.act = nn.GELU()

    def forward(self, x):
        h = self.fc2(self.act(self.fc1(x))) + x          # GELU and the skip add in place
        g = self.fc1(h)
        y = self.act(g) * 0.5 + g                        # g is read again: its GELU must not overwrite it
        z = self.proj(self.fc2(y)) + h
        w = torch.nn.functional.linear(z, z[0, :40, :])  # a weight made from the input: not packed
        return z, w


def make():
    torch.manual_seed(0)
    return Block().eval()
`;

const count = (g: Graph, kind: string) => g.allNodes().filter((n) => n.kind === kind).length;

/** The describe blocks below once per GEMM, the kernel forced for their duration. */
const onEachGemm = (body: (kernel: string) => void) => onEachKernel('TORCHGRAPH_LINEAR_KERNEL',
  (kernel) => `on ${kernel === 'onednn' ? 'oneDNN\'s' : 'torchgraph\'s own'} GEMM`, body);

onEachGemm(() => describe('linear layers on packed weights, activations and adds in place', function () {
  this.timeout(600_000);
  const user = userModel(MODEL_PY, 'packed');

  for (const how of ['traced', 'scripted'] as const) {
    it(`${how}: linears and the Conv1D packed, in-place ops only where the input dies, outputs equal, peaks as estimated`, async () => {
      const m = await Module.load(user.exportAs(how, 'make', '2x50x256', how));
      const specs = [{ shape: [2, 50, 256], dtype: 'float32' as const }];
      const x = randomTensor([2, 50, 256], 'float32', 5);
      try {
        const p = await prepareGraphs(m, specs);
        const packed = p.lowering.packedLinears ?? [];
        assert.equal(packed.filter((o) => o.lowered).length, 5, JSON.stringify(packed));
        assert.match(packed.filter((o) => !o.lowered).map((o) => o.reason).join(), /computed from the inputs/);
        assert.equal(count(p.fused, packedLinearOp()), 5);
        assert.deepEqual(packed.filter((o) => o.postOp).map((o) => o.postOp), ['gelu'], 'the first GELU is fc1\'s post-op');
        assert.equal(count(p.fused, 'aten::gelu') + count(p.fused, 'aten::gelu_'), 1, 'the second GELU reads g, which is read again');
        assert.equal(count(p.fused, 'aten::gelu_'), 0, 'and so is not in place');
        assert.ok(count(p.fused, 'aten::add_') >= 1, 'a skip connection in place');
        assert.ok(p.lowering.heldWeightBytes > 0);
        const cmp = await compareGraphs(m, { unfused: p.decomposed, fused: p.fused }, [x], { warmup: 1, repetitions: 1 });
        assert.ok(cmp.runs.fused.maxAbsDiff !== null && cmp.runs.fused.maxAbsDiff <= 1e-4, `fused max abs diff ${cmp.runs.fused.maxAbsDiff}`);
        // Within a few bytes: the GEMM library keeps a few bytes of its own on this model.
        const off_by = Math.abs(cmp.runs.fused.peakBytes - p.estimates.fused.peakBytes);
        assert.ok(off_by <= 64, `fused peak measured ${cmp.runs.fused.peakBytes} B, estimated ${p.estimates.fused.peakBytes} B`);
        const off = await prepareGraphs(m, specs, { packedLinears: false, inPlace: false });
        assert.equal(count(off.fused, packedLinearOp()) + count(off.fused, 'aten::gelu_'), 0);
        assert.ok(p.estimates.fused.peakBytes <= off.estimates.fused.peakBytes, `in place never costs memory: ${p.estimates.fused.peakBytes} vs ${off.estimates.fused.peakBytes}`);
      } finally {
        x.dispose();
        m.dispose();
      }
    });
  }
}));

const ACTIVATIONS_PY = `import torch
from torch import nn
from torch.nn import functional as F


class Conv1D(nn.Module):
    def __init__(self, nf, nx):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(nx, nf) * 0.05)
        self.bias = nn.Parameter(torch.randn(nf) * 0.5)

    def forward(self, x):
        size_out = list(x.size()[:-1]) + [self.weight.size(-1)]
        x = torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight)
        return x.view(size_out)


class Acts(nn.Module):
    def __init__(self):
        super().__init__()
        self.c_fc = Conv1D(192, 96)
        self.fcs = nn.ModuleList([nn.Linear(96, 96) for _ in range(7)])

    def forward(self, x):
        a = F.gelu(self.c_fc(x), approximate='tanh')[..., :96]   # GPT-2's MLP: through Conv1D's view
        outs = [a, F.silu(self.fcs[0](x)), F.leaky_relu(self.fcs[1](x), 0.2), F.hardtanh(self.fcs[2](x), -0.5, 0.75),
                torch.sigmoid(self.fcs[3](x)), torch.tanh(self.fcs[4](x)), F.relu6(self.fcs[5](x)), F.hardswish(self.fcs[6](x))]
        return torch.cat(outs, -1)


def make():
    torch.manual_seed(0)
    return Acts().eval()
`;

onEachGemm(() => describe('activations after a packed linear as the GEMM\'s post-ops', function () {
  this.timeout(600_000);
  const user = userModel(ACTIVATIONS_PY, 'packed_acts');

  it('tanh GELU (through a view), SiLU, leaky ReLU, hardtanh, sigmoid, tanh, ReLU6, hardswish: equal to PyTorch', async () => {
    const m = await Module.load(user.exportAs('traced', 'make', '2x40x96', 'traced'));
    const specs = [{ shape: [2, 40, 96], dtype: 'float32' as const }];
    const x = randomTensor([2, 40, 96], 'float32', 7);
    try {
      const p = await prepareGraphs(m, specs);
      const postOps = (p.lowering.packedLinears ?? []).map((o) => o.postOp).sort();
      assert.deepEqual(postOps, ['gelu tanh', 'hardswish', 'hardtanh -0.5 0.75', 'hardtanh 0 6', 'leaky_relu 0.2', 'sigmoid', 'swish', 'tanh']);
      const acts = ['gelu', 'silu', 'leaky_relu', 'hardtanh', 'sigmoid', 'tanh', 'relu6', 'hardswish'];
      const left = p.fused.allNodes().filter((n) => acts.some((a) => n.kind === `aten::${a}` || n.kind === `aten::${a}_`));
      assert.deepEqual(left.map((n) => n.kind), [], 'every activation is a post-op');
      const cmp = await compareGraphs(m, { unfused: p.decomposed, fused: p.fused }, [x], { warmup: 1, repetitions: 1 });
      assert.ok(cmp.runs.fused.maxAbsDiff !== null && cmp.runs.fused.maxAbsDiff <= 1e-5, `fused max abs diff ${cmp.runs.fused.maxAbsDiff}`);
    } finally {
      x.dispose();
      m.dispose();
    }
  });
}));
