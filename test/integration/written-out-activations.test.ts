// Activations written out as arithmetic (lib/transforms/written-out-ops.ts), as
// transformers writes them (activations.py: NewGELUActivation, FastGELUActivation,
// GELUActivation._gelu_python) and as users write SiLU, become one ATen op in the fused graph,
// equal to the original; a near miss (another constant) and an expression whose inner value is
// read elsewhere stay as written. RMSNorm as transformers writes it (MistralRMSNorm, Qwen2RMSNorm,
// T5LayerNorm, in the corpus' real models) becomes aten::rms_norm, and with the residual add before
// it torchgraph::add_rms_norm.
import { strict as assert } from 'assert';
import { userModel } from '../support/user-model';
import { Module } from '../../lib/torchscript/module';
import { prepareGraphs } from '../../lib/pipeline/prepare';
import { compareGraphs } from '../../lib/pipeline/compare';
import { randomTensor } from '../../lib/torchscript/random';
import { loadCorpus } from '../../lib/app/corpus';
import { readNpy } from '../../lib/torchscript/npy';
import { Tensor } from '../../lib/torchscript/tensor';
import type { TypedArray } from '../../lib/torchscript/binding';

const MODEL_PY = `import math
import torch
from torch import nn


class Acts(nn.Module):
    def forward(self, x):
        new_gelu = 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))
        fast_gelu = 0.5 * x * (1.0 + torch.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x)))
        erf_gelu = x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))
        silu = x * torch.sigmoid(x)
        near_miss = 0.5 * x * (1.0 + torch.tanh(0.79 * (x + 0.044715 * torch.pow(x, 3.0))))
        inner = torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0)))
        shared = 0.5 * x * (1.0 + inner) + inner
        return new_gelu, fast_gelu, erf_gelu, silu, near_miss, shared


def make():
    return Acts().eval()
`;

describe('activations written out as arithmetic', function () {
  this.timeout(300_000);
  const user = userModel(MODEL_PY, 'acts');

  for (const how of ['traced', 'scripted'] as const) {
    it(`${how}: NewGELU, FastGELU, the erf GELU and SiLU become one op each, equal; the near miss and the shared one stay`, async () => {
      const m = await Module.load(user.exportAs(how, 'make', '4x64x96', how));
      const x = randomTensor([4, 64, 96], 'float32', 11);
      try {
        const p = await prepareGraphs(m, [{ shape: [4, 64, 96], dtype: 'float32' }]);
        assert.deepEqual(p.lowering.writtenOutActivations, { 'GELU, tanh form': 1, 'GELU, tanh form (fast)': 1, 'GELU, erf form': 1, SiLU: 1 });
        const kinds = p.fused.allNodes().map((n) => n.kind);
        assert.equal(kinds.filter((k) => k.startsWith('aten::gelu')).length, 3);
        assert.equal(kinds.filter((k) => k.startsWith('aten::tanh')).length, 2, 'the near miss and the shared expression keep their tanh');
        const cmp = await compareGraphs(m, { unfused: p.decomposed, fused: p.fused }, [x], { warmup: 1, repetitions: 1 });
        assert.ok(cmp.runs.fused.maxAbsDiff !== null && cmp.runs.fused.maxAbsDiff <= 1e-5, `fused max abs diff ${cmp.runs.fused.maxAbsDiff}`);
        const off = await prepareGraphs(m, [{ shape: [4, 64, 96], dtype: 'float32' }], { writtenOutActivations: false });
        assert.equal(off.lowering.writtenOutActivations, undefined);
      } finally {
        x.dispose();
        m.dispose();
      }
    });
  }

  for (const [id, norms, adds] of [['mistral_gqa_eager', 5, 4], ['qwen2_gqa_sdpa', 5, 4], ['t5_eager', 12, 10]] as const) {
    it(`${id}: the model's own RMSNorms become aten::rms_norm, those after a residual add torchgraph::add_rms_norm, equal`, async () => {
      const corpus = await loadCorpus({ log: () => {} });
      const fx = corpus.byId[id];
      if (!fx?.variants.traced) assert.fail(`${id} not exported: ${JSON.stringify(fx?.errors ?? corpus.skips)}`);
      const m = await Module.load(fx.variants.traced);
      const xs = fx.inputs.map((i) => { const a = readNpy(i.file); return Tensor.from(a.data as TypedArray, a.shape, a.dtype); });
      try {
        const p = await prepareGraphs(m, fx.inputs.map((i) => ({ shape: i.shape, dtype: i.dtype })));
        assert.deepEqual(p.lowering.writtenOutActivations, { RMSNorm: norms });
        const fusedAdds = (p.lowering.addNorms ?? []).filter((o) => o.lowered).length;
        assert.equal(fusedAdds, adds, JSON.stringify(p.lowering.addNorms));
        const kinds = p.fused.allNodes().map((n) => n.kind);
        assert.equal(kinds.filter((k) => k === 'aten::rms_norm').length + kinds.filter((k) => k === 'torchgraph::add_rms_norm').length, norms);
        assert.equal(kinds.filter((k) => k === 'aten::rsqrt').length, 0, 'no RMSNorm left written out');
        const cmp = await compareGraphs(m, { unfused: p.decomposed, fused: p.fused }, xs, { warmup: 1, repetitions: 1 });
        assert.ok(cmp.runs.fused.maxAbsDiff !== null && cmp.runs.fused.maxAbsDiff <= 1e-5, `fused max abs diff ${cmp.runs.fused.maxAbsDiff}`);
      } finally {
        xs.forEach((t) => t.dispose());
        m.dispose();
      }
    });
  }
});
