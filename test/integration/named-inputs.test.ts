// Inputs by name: Module.inputs() lists them from the schema, forward({ name: tensor }) binds
// them with defaults anywhere, and `--input name=SPEC` does the same on the command line.
// A scripted model with optional arguments (real libtorch).
import { strict as assert } from 'assert';
import { Module, Tensor, TorchGraphError, randomTensor } from '../../lib';
import { ensureModel, type ModelFixture } from '../../lib/app/models';
import { runCli } from '../support/cli';
import { maxAbsDiff } from '../support/tensors';

describe('named inputs', function () {
  this.timeout(300_000);
  let fx: ModelFixture;
  let m: Module;
  before(async () => {
    fx = await ensureModel('transformer_encoder_optional');
    m = await Module.load(fx.variants.scripted!);
  });
  after(() => m?.dispose());

  it('Module.inputs() gives names, types and defaults from the schema', () => {
    const ins = m.inputs();
    assert.deepEqual(ins.map((a) => a.name), ['src', 'mask', 'src_key_padding_mask', 'is_causal', 'scale', 'shift', 'dims', 'center']);
    assert.deepEqual(ins.slice(0, 2).map((a) => [a.type, a.hasDefault, a.default]), [['Tensor', false, undefined], ['Optional[Tensor]', true, null]]);
    assert.equal(ins[4].default, 0.5);
  });

  it('forward({ name: tensor }) equals the positional call, defaults filled around a later argument', async () => {
    const src = randomTensor([2, 7, 48], 'float32', 1);
    const byName = await m.forward({ src }) as Tensor;
    const byPos = await m.forward(src) as Tensor;
    assert.equal(maxAbsDiff(byName, byPos), 0);
    // center (the last argument) given alone: everything between takes its default.
    const centered = await m.forward({ center: false, src }) as Tensor;
    const positional = await m.forward(src, null, null, null, 0.5, 1n, [-1n], false) as Tensor;
    assert.equal(maxAbsDiff(centered, positional), 0);
    for (const t of [src, byName, byPos, centered, positional]) t.dispose();
  });

  it('an unknown name or a required argument left out is ERR_INVALID_ARG naming it', async () => {
    const src = randomTensor([2, 7, 48], 'float32', 1);
    await assert.rejects(m.forward({ src, masc: null }), (e: TorchGraphError) => e.code === 'ERR_INVALID_ARG' && /has no argument 'masc'/.test(e.message));
    await assert.rejects(m.forward({ center: true }), (e: TorchGraphError) => e.code === 'ERR_INVALID_ARG' && /'src' \(Tensor\) has no default/.test(e.message));
    src.dispose();
  });

  it('--input name=SPEC on the command line', () => {
    const ok = runCli(['validate', fx.variants.scripted!, '--input', 'src=2x7x48', '--quiet']);
    assert.equal(ok.code, 0, ok.err + ok.out);
    const bad = runCli(['validate', fx.variants.scripted!, '--input', 'srcc=2x7x48', '--quiet']);
    assert.equal(bad.code, 2, bad.err);
    assert.match(bad.err, /--input srcc=2x7x48: forward has no argument 'srcc' \(src, mask, /);
  });
});
