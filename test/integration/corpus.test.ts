// The real-model corpus (scripts/corpus.py: model classes of transformers, and of
// timm and torchvision where they import here), one `it` per model and variant: validate passes
// every check; every nn.MultiheadAttention and SDPA site is decomposed; every attention core is
// lowered to scaled_dot_product_attention or refused for a fact about the model (its attention
// weights are returned); unfused and fused outputs within 1e-4 of the original; estimated peaks
// within 10% of measured; the fused peak no higher than the original's.
//
// The before hook installs the pinned libraries (scripts/setup-corpus.js, once) and exports the
// corpus (cached by content). TORCHGRAPH_CORPUS=small leaves out the standard-size models.
import { strict as assert } from 'assert';
import * as path from 'path';
import { Test } from 'mocha';
import { loadCorpus, type Corpus, type CorpusFixture } from '../../lib/app/corpus';
import type { VariantName } from '../../lib/app/models';
import { readNpy } from '../../lib/torchscript/npy';
import { packageRoot } from '../../lib/torchscript/package-root';
import { exampleInputs } from '../../lib/app/cli/model';
import { createPipeline } from '../../lib/pipeline/pipeline';
import { runValidation } from '../../lib/pipeline/stages';
import type { ValidationReport } from '../../lib/report/types';

const TOLERANCE = 1e-4;
const ESTIMATE_LIMIT = 0.1;
/**
 * A core may stay unlowered only for a fact about the model: its weights are used outside it, or
 * at its shapes SDPA itself would be the fused graph's peak, above the explicit core's (prepare.ts).
 */
const FACTUAL_REFUSAL = /returned weights|is where the fused graph would peak/;

/** Attention sites of the model as traced: the cores it computes (one softmax per eager
 * attention; one op per SDPA or fast-path attention) and the ops validate must decompose. */
function attentionSites(fx: CorpusFixture): { cores: number; ops: number } {
  const k = fx.graphs.traced?.kinds ?? {};
  const ops = (k['aten::scaled_dot_product_attention'] ?? 0) + (k['aten::_native_multi_head_attention'] ?? 0) +
    (k['aten::_transformer_encoder_layer_fwd'] ?? 0);
  return { cores: ops + (k['aten::softmax'] ?? 0), ops };
}

const rel = (est: number, meas: number) => Math.abs(est - meas) / meas;
const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

/** Every way `report` falls short of the bar, one line each (empty: it meets it). */
function shortfalls(fx: CorpusFixture, report: ValidationReport): string[] {
  const out: string[] = [];
  for (const c of report.checks ?? []) if (!c.passed) out.push(`check ${c.name} failed: ${c.detail}`);
  if (!report.passed && !(report.checks ?? []).some((c) => !c.passed)) out.push('validate did not pass');

  const sites = attentionSites(fx);
  const a = report.attention;
  if (a.decomposed !== a.found) out.push(`attention: ${a.decomposed} of ${a.found} decomposed; skipped: ${a.skipped.map((s) => `${s.node}: ${s.reason}`).join('; ')}`);
  if (a.found < sites.ops) out.push(`attention: ${a.found} found, the traced model has ${sites.ops} SDPA/MHA ops`);
  const leftOps = ['aten::scaled_dot_product_attention', 'aten::_native_multi_head_attention', 'aten::_transformer_encoder_layer_fwd', 'call_module:MultiheadAttention']
    .filter((op) => report.graphs.decomposed.ops[op]);
  if (leftOps.length) out.push(`decomposed graph still has ${leftOps.map((op) => `${report.graphs.decomposed.ops[op]} ${op}`).join(', ')}`);

  const cores = report.graphs.fused.lowering?.attentionCores ?? [];
  const lowered = cores.filter((c) => c.lowered);
  const factual = cores.filter((c) => !c.lowered && FACTUAL_REFUSAL.test(c.reason ?? ''));
  for (const c of cores.filter((x) => !x.lowered && !FACTUAL_REFUSAL.test(x.reason ?? ''))) out.push(`core ${c.id} not lowered: ${c.reason ?? 'no reason given'}`);
  const sdpa = report.graphs.fused.ops['aten::scaled_dot_product_attention'] ?? 0;
  if (lowered.length + factual.length < sites.cores) {
    out.push(`cores: ${lowered.length} lowered + ${factual.length} refused (returned weights, or SDPA would raise the peak) of ${sites.cores} in the model ` +
      `(${cores.length} found by the partitioner)`);
  }
  if (sdpa < lowered.length) out.push(`fused graph has ${sdpa} scaled_dot_product_attention for ${lowered.length} lowered cores`);

  const { original, unfused, fused } = report.runs;
  for (const [name, r] of [['unfused', unfused], ['fused', fused]] as const) {
    if (r.maxAbsDiff === null || !(r.maxAbsDiff <= TOLERANCE)) out.push(`${name} max abs diff ${r.maxAbsDiff} > ${TOLERANCE}`);
    if (!(r.peakBytes > 0)) out.push(`${name} peak not measured (${r.peakBytes})`);
    else if (rel(r.estimatedPeakBytes, r.peakBytes) > ESTIMATE_LIMIT) {
      out.push(`${name} peak estimate ${r.estimatedPeakBytes} B vs measured ${r.peakBytes} B (${pct(rel(r.estimatedPeakBytes, r.peakBytes))} off)`);
    }
  }
  if (!(original.peakBytes > 0)) out.push(`original peak not measured (${original.peakBytes})`);
  else if (fused.peakBytes > original.peakBytes) out.push(`fused measured peak ${fused.peakBytes} B > original ${original.peakBytes} B`);
  return out;
}

interface Row { model: string; variant: VariantName; seconds: number; failures: string[] }

describe('real-model corpus', function () {
  this.timeout(1_800_000);
  let corpus: Corpus;
  const rows: Row[] = [];

  before(async function () {
    this.timeout(1_800_000);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const torch = (require(path.join(packageRoot(), 'scripts', 'libtorch.js')) as { current(): { python: unknown } | null }).current();
    if (!torch?.python) {
      // As the fixture tests: without a Python torch nothing can be exported.
      console.log(`      skipped: ${torch ? 'torch is a bare libtorch; the corpus needs a Python torch (set TORCHGRAPH_PYTHON)' : 'no torch configured (run npm install)'}`);
      this.skip();
    }
    const t0 = Date.now();
    corpus = await loadCorpus({ small: process.env.TORCHGRAPH_CORPUS === 'small', log: (l) => { if (/^torchgraph:|corpus: \d+ models|skipped/.test(l)) console.log(`      ${l}`); } });
    console.log(`      corpus ${corpus.key}: ${corpus.fixtures.length} models, ${corpus.families.length} families, ` +
      `${corpus.cacheHit ? 'cached' : `exported in ${corpus.exportSeconds.toFixed(1)} s`}` +
      `${corpus.installSeconds ? `, libraries installed in ${corpus.installSeconds} s` : ''} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    for (const s of corpus.skips) console.log(`      skip (${s.kind}) ${s.id ?? s.ids?.join(', ') ?? s.library} (${s.library}): ${s.reason}`);

    // One test per model and variant, known only once the exporter has listed them.
    const suite = this.test!.parent!;
    for (const s of corpus.skips.filter((x) => x.kind === 'failed')) {
      suite.addTest(new Test(`${s.id} (${s.library}${s.className ? ` ${s.className}` : ''}) builds and runs eagerly`, () => assert.fail(s.reason)));
    }
    const notExported = new Map<string, string[]>();
    for (const fx of corpus.fixtures) {
      for (const variant of corpus.variants) {
        const file = fx.variants[variant];
        const label = `${fx.name} ${variant} (${fx.className}${fx.attnImplementation ? `, ${fx.attnImplementation}` : ''})`;
        if (!file) {
          // Not exported: the class does not script (or trace); the reason is torch's, recorded by the
          // exporter. Grouped by reason, with the class names and addresses in it made generic.
          const why = `${variant}: ${(fx.errors[variant] ?? 'no error recorded').split('\n')[0].slice(0, 200)}`
            .replace(/\b\w+Config\b/g, '<Config>').replace(/ at 0x[0-9a-f]+/g, '');
          notExported.set(why, [...(notExported.get(why) ?? []), fx.name]);
          continue;
        }
        suite.addTest(new Test(label, async () => {
          const t = Date.now();
          const inputs = exampleInputs(fx);
          let report: ValidationReport;
          try {
            report = await runValidation(createPipeline(), {
              model: `${fx.name} (${variant})`, file, device: 'cpu', seed: 0, tolerance: TOLERANCE,
              inputs: inputs.tensors, inputInfo: inputs.info,
            });
          } catch (e) {
            rows.push({ model: fx.name, variant, seconds: (Date.now() - t) / 1000, failures: [`validate threw: ${(e as Error).message.split('\n')[0]}`] });
            throw e;
          }
          const failures = shortfalls(fx, report);
          rows.push({ model: fx.name, variant, seconds: (Date.now() - t) / 1000, failures });
          if (failures.length) assert.fail(`${fx.name} ${variant} misses the bar:\n  ${failures.join('\n  ')}`);
        }));
      }
    }
    for (const [why, ids] of notExported) console.log(`      not exported (${ids.length}): ${why}: ${ids.join(', ')}`);
  });

  after(function () {
    if (!rows.length) return;
    const failed = rows.filter((r) => r.failures.length);
    console.log(`\n      corpus: ${rows.length - failed.length} of ${rows.length} meet the bar; ` +
      `validate runs took ${rows.reduce((s, r) => s + r.seconds, 0).toFixed(1)} s`);
    for (const r of failed) console.log(`      FAIL ${r.model} ${r.variant}: ${r.failures.join(' | ')}`);
  });

  it('has at least 20 models in 12 families, from the pinned libraries, every skip with its reason', () => {
    assert.ok(corpus.fixtures.length >= 20, `${corpus.fixtures.length} models`);
    assert.ok(corpus.families.length >= 12, `${corpus.families.length} families: ${corpus.families.join(', ')}`);
    assert.equal(corpus.versions.transformers, '5.18.0');
    const categories = new Set(corpus.fixtures.map((f) => f.category));
    for (const c of ['text-encoder', 'decoder', 'encoder-decoder', 'vision-transformer', 'vision-conv']) assert.ok(categories.has(c as never), `no ${c} model`);
    for (const fam of ['bert', 'gpt2', 'llama', 't5', 'vit', 'swin']) {
      for (const impl of ['eager', 'sdpa']) {
        assert.ok(corpus.fixtures.some((f) => f.family === fam && f.attnImplementation === impl), `no ${fam} with ${impl} attention`);
      }
    }
    for (const f of corpus.fixtures) {
      assert.ok(f.variants.traced, `${f.name}: not traced: ${f.errors.traced}`);
      assert.ok(f.maxAbsDiff.traced !== undefined && f.maxAbsDiff.traced! <= TOLERANCE, `${f.name}: reloaded trace differs by ${f.maxAbsDiff.traced}`);
      assert.equal(f.errors.reference, undefined, f.name);
      assert.equal(path.dirname(f.dir), corpus.dir);
    }
    // timm and torchvision are in the corpus or skipped with the reason (never silently).
    for (const lib of ['timm', 'torchvision']) {
      const skip = corpus.skips.find((s) => s.library === lib);
      assert.ok(corpus.fixtures.some((f) => f.library === lib) || (skip && skip.reason.length > 10), `${lib}: neither exported nor skipped with a reason`);
    }
    for (const s of corpus.skips) assert.ok(s.reason.trim(), JSON.stringify(s));
    assert.ok(corpus.dir.startsWith(path.join(packageRoot(), '.torchgraph')) || !!process.env.TORCHGRAPH_MODELS_DIR);
  });

  it('gives token ids in the vocabulary and attention masks that really pad', () => {
    let masks = 0;
    for (const f of corpus.fixtures) {
      const vocab = f.raw.vocabSize as number | undefined;
      for (const t of f.inputs) {
        const a = readNpy(t.file);
        if (t.name.endsWith('input_ids')) {
          assert.equal(t.dtype, 'int64');
          const ids = Array.from(a.data as BigInt64Array, Number);
          assert.ok(vocab !== undefined && ids.every((i) => i >= 0 && i < vocab), `${f.name} ${t.name}: ids out of [0, ${vocab})`);
        } else if (t.name === 'attention_mask') {
          const m = Array.from(a.data as BigInt64Array, Number);
          const [rowsN, len] = t.shape;
          const padded = Array.from({ length: rowsN }, (_, r) => m.slice(r * len, (r + 1) * len).includes(0));
          assert.ok(padded.some(Boolean) && !padded.every(Boolean), `${f.name}: the mask pads ${padded.filter(Boolean).length} of ${rowsN} rows`);
          masks++;
        } else {
          assert.equal(t.dtype, 'float32', `${f.name} ${t.name}`);
        }
      }
    }
    assert.ok(masks >= 10, `${masks} models with padding masks`);
  });
});
