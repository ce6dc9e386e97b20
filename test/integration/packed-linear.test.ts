// Linear layers on oneDNN-reordered weights (lib/fusion/linear-packed.ts) and activations / residual
// adds in place where their input dies (lib/fusion/in-place.ts), on a user's module exported by
// `torchgraph export` (traced and scripted): nn.Linear with and without bias, a GPT-2-style
// Conv1D (addmm over an (in, out) weight), a weight computed from the input (left alone), a
// GELU whose input is read again afterwards (must not be overwritten), and skip connections.
import { strict as assert } from 'assert';
import { userModel } from '../support/user-model';
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

describe('linear layers on oneDNN-reordered weights, activations and adds in place', function () {
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
        assert.equal(count(p.fused, 'mkldnn::_linear_pointwise'), 5);
        assert.equal(count(p.fused, 'aten::gelu_'), 1, 'the first GELU in place; the second reads g, which is read again');
        assert.ok(count(p.fused, 'aten::add_') >= 1, 'a skip connection in place');
        assert.ok(p.lowering.heldWeightBytes > 0);
        const cmp = await compareGraphs(m, { unfused: p.decomposed, fused: p.fused }, [x], { warmup: 1, repetitions: 1 });
        assert.ok(cmp.runs.fused.maxAbsDiff !== null && cmp.runs.fused.maxAbsDiff <= 1e-4, `fused max abs diff ${cmp.runs.fused.maxAbsDiff}`);
        // Within a few bytes: the GEMM library keeps a few bytes of its own on this model.
        const off_by = Math.abs(cmp.runs.fused.peakBytes - p.estimates.fused.peakBytes);
        assert.ok(off_by <= 64, `fused peak measured ${cmp.runs.fused.peakBytes} B, estimated ${p.estimates.fused.peakBytes} B`);
        const off = await prepareGraphs(m, specs, { packedLinears: false, inPlace: false });
        assert.equal(count(off.fused, 'mkldnn::_linear_pointwise') + count(off.fused, 'aten::gelu_'), 0);
        assert.ok(p.estimates.fused.peakBytes <= off.estimates.fused.peakBytes, `in place never costs memory: ${p.estimates.fused.peakBytes} vs ${off.estimates.fused.peakBytes}`);
      } finally {
        x.dispose();
        m.dispose();
      }
    });
  }
});
