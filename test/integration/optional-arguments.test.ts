// Scripted modules whose forward has arguments with defaults given only the first
// inputs, the rest take their defaults everywhere, in the library (Module.run, propagateShapes,
// prepareGraphs, compareGraphs: original and rebuilt graphs) and in the CLI (validate, inspect,
// bench). Fixture: transformer_encoder_optional, a scripted nn.TransformerEncoder behind
// forward(src, mask=None, src_key_padding_mask=None, is_causal=None, scale=0.5, shift=1,
// dims=(-1,), center=True).
import { strict as assert } from 'assert';
import { runCli, type CliResult } from '../support/cli';
import { Module, Tensor, TorchGraphError } from '../../lib';
import { ensureModel, type ModelFixture } from '../../lib/app/models';
import { prepareGraphs } from '../../lib/pipeline/prepare';
import { compareGraphs } from '../../lib/pipeline/compare';
import { propagateShapes } from '../../lib/torchscript/propagate-shapes';
import { tensorInfo, valueInfo } from '../../lib/core/value-info';
import { exportView } from '../../lib/transforms/module-views';
import { validateReportJson } from '../../lib/report/json';
import type { ValidationReport } from '../../lib/report/types';
import { maxAbsDiff, tensorFromFile } from '../support/tensors';

function cli(...args: string[]): CliResult {
  return runCli(args);
}

const ARGS = ['src', 'mask', 'src_key_padding_mask', 'is_causal', 'scale', 'shift', 'dims', 'center'];

describe('optional arguments take their defaults (scripted nn.TransformerEncoder)', function () {
  this.timeout(600_000);
  let fx: ModelFixture;
  let m: Module;
  let src: Tensor;

  before(async () => {
    fx = await ensureModel('transformer_encoder_optional');
    m = await Module.load(fx.variants.scripted!);
    src = tensorFromFile(fx.inputs[0]);
  });
  after(() => { src?.dispose(); m?.dispose(); });

  it('module.signature(): names, types and defaults (None null, ints BigInt); a trace keeps only src', async () => {
    const sig = m.signature();
    assert.deepEqual(sig.map((a) => a.name), ARGS);
    assert.deepEqual(sig.map((a) => a.type), ['Tensor', 'Optional[Tensor]', 'Optional[Tensor]', 'Optional[bool]', 'float', 'int', 'Tuple[int]', 'bool']);
    assert.equal(sig[0].hasDefault, false);
    assert.deepEqual(sig.slice(1).map((a) => a.default), [null, null, null, 0.5, 1n, [-1n], true]);
    const traced = await Module.load(fx.variants.traced!);
    try {
      assert.deepEqual(traced.signature().map((a) => [a.name, a.hasDefault]), [['src', false]]);
    } finally {
      traced.dispose();
    }
  });

  it('Module.forward(src) matches the eager reference; given values override the defaults after them', async () => {
    const out = await m.forward(src) as Tensor;
    assert.ok(maxAbsDiff(out, fx.outputs[0]) <= 1e-5);
    // scale 2.0 instead of 0.5: out - shift grows 4x.
    const scaled = (await m.run('forward', [src, null, null, null, 2.0])).output as Tensor;
    const a = out.data() as Float32Array;
    const b = scaled.data() as Float32Array;
    for (let i = 0; i < a.length; i += 97) assert.ok(Math.abs((b[i] - 1) - 4 * (a[i] - 1)) < 1e-4, `${i}: ${a[i]} ${b[i]}`);
    out.dispose();
    scaled.dispose();
  });

  it('a missing argument without a default, or too many inputs: ERR_INVALID_ARG naming it', async () => {
    await assert.rejects(m.run('forward', []), (e: unknown) =>
      e instanceof TorchGraphError && e.code === 'ERR_INVALID_ARG' && /missing argument 'src' \(Tensor\)/.test(e.message));
    await assert.rejects(m.run('forward', [src, null, null, null, 0.5, 1n, [-1n], true, 3]), (e: unknown) =>
      e instanceof TorchGraphError && e.code === 'ERR_INVALID_ARG' && /takes 8 inputs, 9 given/.test(e.message));
  });

  it('propagateShapes with only src: the defaulted inputs carry their values (None stays None)', async () => {
    const g = exportView(m, 'inlined').graph;
    const report = await propagateShapes(g, m, [{ shape: [2, 7, 48], dtype: 'float32' }]);
    assert.ok(report.values > 0);
    const [srcIn, mask, kpm, isCausal, scale, shift] = g.inputs.filter((v) => v.type.kind !== 'Class');
    assert.deepEqual(tensorInfo(srcIn)?.shape, [2, 7, 48]);
    assert.deepEqual([mask, kpm, isCausal].map((v) => valueInfo(v)?.kind), ['None', 'None', 'None']);
    assert.deepEqual(valueInfo(scale), { kind: 'Float', value: 0.5 });
    assert.deepEqual(valueInfo(shift), { kind: 'Int', value: 1 });
    assert.deepEqual(tensorInfo(g.outputs[0])?.shape, [2, 7, 48]);
    await assert.rejects(propagateShapes(g, m, []), /missing argument 'src'/);
  });

  it('prepareGraphs and compareGraphs with only src: the rebuilt graphs keep every input and get the defaults', async () => {
    const prepared = await prepareGraphs(m, [{ shape: [2, 7, 48], dtype: 'float32' }]);
    for (const g of [prepared.decomposed, prepared.fused]) {
      assert.equal(g.inputs.filter((v) => v.type.kind !== 'Class').length, ARGS.length);
    }
    const cmp = await compareGraphs(m, { unfused: prepared.decomposed, fused: prepared.fused }, [src], { warmup: 1, repetitions: 1 });
    assert.ok(cmp.runs.unfused.maxAbsDiff !== null && cmp.runs.unfused.maxAbsDiff <= 1e-5, `unfused ${cmp.runs.unfused.maxAbsDiff}`);
    assert.ok(cmp.runs.fused.maxAbsDiff !== null && cmp.runs.fused.maxAbsDiff <= 1e-5, `fused ${cmp.runs.fused.maxAbsDiff}`);
    const r = prepared.decomposition.report;
    console.log(`      attentions: ${r.decomposed.length} of ${r.found} decomposed${r.skipped.length ? `; skipped: ${r.skipped.map((s) => `${s.node} (${s.reason})`).join('; ')}` : ''}`);
  });

  it('cli validate transformer_encoder_optional --input 2x7x48: the optional masks take None, every check passes', () => {
    const r = cli('validate', 'transformer_encoder_optional', '--input', '2x7x48', '--json');
    assert.equal(r.code, 0, r.err);
    const report = JSON.parse(r.out) as ValidationReport;
    assert.deepEqual(validateReportJson(report), []);
    assert.deepEqual(report.inputs!.map((i) => [i.name, i.shape.join('x')]), [['src', '2x7x48']]);
    // The masks are Optional[Tensor]s merged at run time: the shape run sees them None.
    assert.deepEqual(report.checks!.filter((c) => !c.passed), []);
    assert.ok(report.attention!.found >= 2 && report.attention!.decomposed === report.attention!.found, JSON.stringify(report.attention));
    // Counted by module: 2 layers, though each has a fast-path and a slow-path site.
    assert.deepEqual(report.attention!.modules, { found: 2, decomposed: 2 });
    // The scripted layers keep PyTorch's fast-path check as prim::If: the cores of the path that
    // ran are lowered inside their branches (partition.ts fuses each nested block on its own).
    const lowered = report.graphs.fused.lowering!.attentionCores.filter((c) => c.lowered).map((c) => c.id);
    assert.deepEqual(lowered.sort(), ['encoder.layers.0', 'encoder.layers.1']);
    assert.ok(report.graphs.fused.groups >= 2, `groups ${report.graphs.fused.groups}`);
  });

  it('cli validate of the scripted file: too many inputs is exit 2 with one line naming the signature', () => {
    const specs = ['2x7x48', '7x7', '2x7:bool', '2x7', '1', '1', '1', '1', '1'];
    const r = cli('validate', fx.variants.scripted!, ...specs.flatMap((s) => ['--input', s]), '--quiet');
    assert.equal(r.code, 2, r.err + r.out);
    assert.equal(r.err.trim().split('\n').length, 1, r.err);
    assert.match(r.err, /forward\(src, mask=None, .*center=True\) takes 8 inputs, 9 given/);
  });

  it('cli inspect --view fused and bench with only src', () => {
    const i = cli('inspect', 'transformer_encoder_optional', '--view', 'fused', '--input', '2x7x48');
    assert.equal(i.code, 0, i.err);
    assert.match(i.out, /%is_causal\S* : Optional\[bool\]/);
    const b = cli('bench', 'transformer_encoder_optional', '--warmup', '1', '--repeat', '1', '--json');
    assert.equal(b.code, 0, b.err);
    const report = JSON.parse(b.out) as { cases: { comparison: { runs: Record<string, { maxAbsDiff: number | null }> } }[] };
    assert.ok(report.cases[0].comparison.runs.fused.maxAbsDiff! <= 1e-5);
  });
});
