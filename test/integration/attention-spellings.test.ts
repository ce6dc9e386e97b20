// Attention spellings beyond the partitioner's first reading (issue: attention, round 3), traced
// from test/fixtures/attention_spellings.py and from transformers' CvtModel and Swinv2Model, timm's
// Xcit and MultiScaleVit (MViTv2) and torchvision's Swin (the corpus): each is
// read into one attention core and lowered to SDPA, equal to the original within 1e-4, with
// nothing of the explicit core left in the fused graph; what SDPA cannot express is refused and
// listed with its reason; a softmax that is not attention is not listed.
import { strict as assert } from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Module } from '../../lib';
import { torchInfo } from '../../lib/app/models';
import { loadCorpus } from '../../lib/app/corpus';
import { prepareGraphs } from '../../lib/pipeline/prepare';
import { compareGraphs } from '../../lib/pipeline/compare';
import { randomTensor } from '../../lib/torchscript/random';
import { Tensor } from '../../lib/torchscript/tensor';
import type { InputSpec } from '../../lib/torchscript/propagate-shapes';

const TOL = 1e-4;
const X: InputSpec = { shape: [2, 64, 48], dtype: 'float32' };

async function lowerAndCompare(file: string, specs: InputSpec[], inputs: Tensor[]) {
  const m = await Module.load(file);
  try {
    const p = await prepareGraphs(m, specs);
    const cmp = await compareGraphs(m, { unfused: p.decomposed, fused: p.fused }, inputs, { warmup: 0, repetitions: 1 });
    const softmaxes = p.fused.allNodes().filter((n) => n.kind === 'aten::softmax').length;
    return {
      cores: p.lowering.attentionCores, fusedDiff: cmp.runs.fused.maxAbsDiff, softmaxes,
      sdpa: p.fused.allNodes().filter((n) => n.kind === 'aten::scaled_dot_product_attention').length,
      fusedPeak: { estimated: p.estimates.fused.peakBytes, measured: cmp.runs.fused.peakBytes },
    };
  } finally {
    m.dispose();
  }
}

describe('attention spellings: einsum, in-place scale and mask, views, and no silent misses (integration)', function () {
  this.timeout(600_000);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tg-spellings-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  before(function () {
    const py = torchInfo().python;
    if (!py) this.skip();
    const env = { ...process.env, PYTHONPATH: [py.pythonPath, process.env.PYTHONPATH].filter(Boolean).join(path.delimiter) };
    const r = spawnSync(py.exe, [path.join(__dirname, '..', 'fixtures', 'attention_spellings.py'), dir], { env, encoding: 'utf8', timeout: 300_000 });
    assert.equal(r.status, 0, r.stderr);
  });

  for (const name of ['Einsum', 'EinsumPermuted', 'EinsumSpaced', 'BaddbmmAlibi', 'DivInPlace', 'MaskedFillInPlace', 'SubtractedMask', 'AddInPlace', 'SliceAssignedBias', 'SliceCopiedRelPos', 'ViewBetween', 'PerHeadTemperature', 'CosineAttention']) {
    it(`${name}: read as one core, lowered to SDPA, equal, nothing of the explicit core left`, async () => {
      const masked = name === 'MaskedFillInPlace' || name === 'SubtractedMask';
      const mask = Tensor.from(BigInt64Array.from({ length: 128 }, (_, i) => (i < 50 || i >= 64 ? 1n : 0n)), [2, 64]);
      const specs: InputSpec[] = masked ? [X, { shape: [2, 64], dtype: 'int64' }] : [X];
      const r = await lowerAndCompare(path.join(dir, `${name}.pt`), specs, masked ? [randomTensor(X.shape, 'float32', 3), mask] : [randomTensor(X.shape, 'float32', 3)]);
      assert.equal(r.cores.length, 1, JSON.stringify(r.cores));
      assert.ok(r.cores[0].lowered, JSON.stringify(r.cores));
      assert.equal(r.sdpa, 1);
      assert.equal(r.softmaxes, 0, 'the explicit softmax is gone from the fused graph');
      assert.ok(r.fusedDiff !== null && r.fusedDiff <= TOL, `fused max abs diff ${r.fusedDiff}`);
      // SDPA on its fused kernel, as estimated (its math fallback would materialise the scores).
      const { estimated, measured } = r.fusedPeak;
      assert.ok(Math.abs(estimated - measured) <= Math.max(0.1 * measured, 16 * 1024), `fused peak estimated ${estimated} B, measured ${measured} B`);
    });
  }

  it('tanh soft-capping between the scores and the softmax: refused (SDPA has no such step), and listed, not silent', async () => {
    const capped = await lowerAndCompare(path.join(dir, 'TanhSoftCap.pt'), [X], [randomTensor(X.shape, 'float32', 3)]);
    assert.equal(capped.cores.length, 1, JSON.stringify(capped.cores));
    assert.ok(!capped.cores[0].lowered && /attention candidate/.test(capped.cores[0].reason ?? ''), JSON.stringify(capped.cores));
    assert.equal(capped.sdpa, 0);
    assert.ok(capped.fusedDiff !== null && capped.fusedDiff <= TOL);
  });

  it('talking heads (a linear over the heads between the scores and the softmax): refused, and listed with what is there', async () => {
    const r = await lowerAndCompare(path.join(dir, 'TalkingHeads.pt'), [X], [randomTensor(X.shape, 'float32', 3)]);
    assert.equal(r.cores.length, 1, JSON.stringify(r.cores));
    assert.ok(!r.cores[0].lowered && /attention candidate/.test(r.cores[0].reason ?? '') && /aten::(linear|matmul|permute)/.test(r.cores[0].reason ?? ''), JSON.stringify(r.cores));
    assert.equal(r.sdpa, 0);
    assert.ok(r.fusedDiff !== null && r.fusedDiff <= TOL);
  });

  it('linear attention (softmax of q and of k apart, then q (k^T v)): no candidate, nothing lowered, equal', async () => {
    const r = await lowerAndCompare(path.join(dir, 'LinearAttention.pt'), [X], [randomTensor(X.shape, 'float32', 3)]);
    assert.deepEqual(r.cores, []);
    assert.equal(r.sdpa, 0);
    assert.ok(r.fusedDiff !== null && r.fusedDiff <= TOL);
  });

  it('scores updated through a slice and also returned: the returned scores carry the update', async () => {
    const r = await lowerAndCompare(path.join(dir, 'SliceAssignedReturned.pt'), [X], [randomTensor(X.shape, 'float32', 3)]);
    assert.equal(r.cores.length, 1, JSON.stringify(r.cores));
    assert.ok(r.fusedDiff !== null && r.fusedDiff <= TOL, `fused max abs diff ${r.fusedDiff}`);
  });

  it('a softmax over logits is not an attention candidate', async () => {
    const r = await lowerAndCompare(path.join(dir, 'ClassifierSoftmax.pt'), [X], [randomTensor(X.shape, 'float32', 3)]);
    assert.deepEqual(r.cores, []);
  });

  for (const [id, what] of [['cvt', 'transformers CvtModel (einsum attention, convolutional projections)'],
    ['swinv2', 'transformers Swinv2Model (cosine attention: a scale per head, a 16*sigmoid bias, shifted windows)'],
    ['timm_xcit', 'timm Xcit (cross-covariance attention over channels with a temperature per head, class attention)'],
    ['timm_mvitv2', 'timm MultiScaleVit (MViTv2: relative positions copied into a slice of the scores, a class token, pooled q/k/v)'],
    ['torchvision_swin', 'torchvision SwinTransformer (shifted windows, a relative position bias, the mask built in the graph)']]) {
    it(`${what}: every core lowered, equal, the fused peak as estimated`, async function () {
      const corpus = await loadCorpus({ log: () => {} });
      const fx = corpus.byId[id];
      // timm imports only where torchvision's Python code does (the corpus records why not).
      const skipped = corpus.skips.find((s) => s.id === id || (id.startsWith('timm_') && s.library === 'timm'));
      if (!fx && skipped) this.skip();
      if (!fx?.variants.traced) assert.fail(`${id} not exported: ${JSON.stringify(fx?.errors ?? corpus.skips)}`);
      const specs = fx.inputs.map((i): InputSpec => ({ shape: i.shape, dtype: i.dtype }));
      const r = await lowerAndCompare(fx.variants.traced, specs, specs.map((s, i) => randomTensor(s.shape, s.dtype, 5 + i)));
      assert.ok(r.cores.length >= 3 && r.cores.every((c) => c.lowered), JSON.stringify(r.cores));
      assert.equal(r.sdpa, r.cores.length);
      assert.ok(r.fusedDiff !== null && r.fusedDiff <= TOL, `fused max abs diff ${r.fusedDiff}`);
      const { estimated, measured } = r.fusedPeak;
      assert.ok(Math.abs(estimated - measured) <= Math.max(0.1 * measured, 16 * 1024), `fused peak estimated ${estimated} B, measured ${measured} B`);
    });
  }
});
