// torch.export programs (.pt2) read, built and run by torchgraph against the outputs Python's
// torch.export.load(program).module() gives for the same seeded inputs (scripts/export_programs.py).
import * as assert from 'assert';
import { ensureBadPrograms, ensureProgram, type ProgramFixture } from '../../lib/app/programs';
import { ensureModel } from '../../lib/app/models';
import { readNpy } from '../../lib/torchscript/npy';
import { loadProgram, programInfoOf, readProgram } from '../../lib/program';
import { Module } from '../../lib/torchscript/module';
import { Tensor } from '../../lib/torchscript/tensor';
import { randomTensor } from '../../lib/torchscript/random';
import { TorchGraphError } from '../../lib/core/errors';
import type { TypedArray } from '../../lib/torchscript/binding';
import { exportView, methodGraphs } from '../../lib/transforms/module-views';
import { inlineModuleCalls } from '../../lib/transforms/inline-modules';
import { oneLine, runCli } from '../support/cli';
import { prepareGraphs } from '../../lib/pipeline/prepare';
import { builtinFile } from '../../lib/app/cli/model';
import { describeLowering } from '../../lib/report/lowering';
import type { InputSpec } from '../../lib/torchscript/propagate-shapes';

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

async function parity(fx: ProgramFixture): Promise<number> {
  const m = await loadProgram(fx.program);
  try {
    const inputs = fx.inputs.map((t) => { const a = readNpy(t.file); return Tensor.from(a.data as TypedArray, a.shape, a.dtype); });
    const out = await m.forward(...inputs);
    const outs = Array.isArray(out) ? out as Tensor[] : [out as Tensor];
    let worst = 0;
    fx.outputs.forEach((o, i) => {
      const ref = readNpy(o.file);
      assert.deepEqual(outs[i].shape, ref.shape);
      worst = Math.max(worst, maxAbsDiff(outs[i].data() as Float32Array, ref.data as Float32Array));
    });
    return worst;
  } finally {
    m.dispose();
  }
}

describe('torch.export programs (.pt2)', function () {
  this.timeout(600_000);
  let mha: ProgramFixture;
  let vit: ProgramFixture;
  before(async () => {
    mha = await ensureProgram('mha_demo');
    vit = await ensureProgram('vit_b_16');
  });

  it('runs mha_demo and ViT-B/16 as Python torch.export.load(...).module() does (within 1e-5)', async () => {
    const dm = await parity(mha);
    const dv = await parity(vit);
    assert.ok(dm <= 1e-5, `mha_demo: max abs diff ${dm}`);
    assert.ok(dv <= 1e-5, `vit_b_16: max abs diff ${dv}`);
  });

  it('reads ops by name and overload with libtorch schemas, inputs by signature name, weights by state_dict name', async () => {
    const { program } = await readProgram(vit.program);
    const aten = program.graph.nodes().filter((n) => n.kind.startsWith('aten::'));
    assert.ok(aten.length > 400);
    for (const n of aten) assert.ok(n.schema?.startsWith(n.kind), `${n.kind} has schema ${n.schema}`);
    const sdpa = aten.filter((n) => n.kind === 'aten::scaled_dot_product_attention');
    assert.equal(sdpa.length, 12);
    // Arguments the program left out are the schema's defaults, readable by name.
    assert.equal(sdpa[0].arg('is_causal')?.node?.attr('value'), 0n);
    assert.deepEqual(program.inputNames, ['x']);
    const m = await loadProgram(vit.program);
    const ts = await Module.load((await ensureModel('vit_b_16')).variants.traced!);
    try {
      const names = (mm: Module) => mm.parameters().map((p) => `${p.qualifiedName} ${p.shape.join('x')}`).sort();
      assert.deepEqual(names(m), names(ts));
      assert.equal(m.parameterBytes, ts.parameterBytes);
      assert.deepEqual(m.signature().map((a) => a.name), ['x']);
      assert.equal(programInfoOf(m)?.schemaVersion.split('.')[0], '8');
      // Scopes from nn_module_stack: the attention's ops sit in the MultiheadAttention module,
      // in the program's graph, in the standard view with its module calls inlined, and in the
      // inlined view (libtorch's inliner builds the call stacks from the rebuilt module methods).
      const std = exportView(m, 'standard').graph;
      const calls = std.nodes().filter((n) => n.kind === 'prim::CallMethod' && n.meta.callModule);
      assert.equal(calls.filter((n) => /MultiheadAttention$/.test((n.meta.callModule as { cls: string }).cls)).length, 12);
      inlineModuleCalls(std, methodGraphs(m), () => true);
      for (const g of [program.graph, std, exportView(m, 'inlined').graph]) {
        const inMha = g.allNodes().filter((n) => n.scope?.some((f) => /MultiheadAttention$/.test(f.cls)));
        assert.ok(inMha.some((n) => n.kind === 'aten::scaled_dot_product_attention'));
        assert.ok(inMha.every((n) => /^encoder\.layers\.encoder_layer_\d+\.self_attention(\.|$)/.test(n.modulePath)), inMha.find((n) => !/^encoder/.test(n.modulePath))?.modulePath);
      }
    } finally {
      m.dispose();
      ts.dispose();
    }
  });

  it('keeps a symbolic batch: ViT-B/16 exported at batch 2 runs at batch 3 as Python does, and decomposes', async () => {
    const fx = await ensureProgram('vit_b_16_dynamic_batch');
    const { program } = await readProgram(fx.program);
    assert.deepEqual((program.graph.inputs[1].type as { shape?: (number | null)[] }).shape, [null, 3, 224, 224]);
    assert.ok(program.graph.nodes().some((n) => n.kind === 'aten::sym_size'));
    assert.equal(fx.inputs[0].shape[0], 3);
    const d = await parity(fx);
    assert.ok(d <= 1e-5, `max abs diff ${d}`);
    const m = await loadProgram(fx.program);
    try {
      const p = await prepareGraphs(m, [{ shape: fx.inputs[0].shape, dtype: 'float32' }]);
      assert.equal(p.decomposition.report.decomposed.length, 12);
      assert.equal(p.lowering.attentionCores.filter((c) => c.lowered).length, 12);
    } finally {
      m.dispose();
    }
  });

  it('checks inputs against the program\'s shape constraints (static sizes, Dim ranges) before running, naming the input and the dim', async () => {
    const fx = await ensureProgram('vit_b_16_dynamic_batch');
    const m = await loadProgram(fx.program);
    const mha = await loadProgram((await ensureProgram('mha_demo')).program);
    const refused = (re: RegExp) => (e: unknown) => e instanceof TorchGraphError && e.code === 'ERR_INVALID_ARG' && re.test(e.message);
    try {
      const spec = (shape: number[]) => [{ shape, dtype: 'float32' as const }];
      await assert.rejects(prepareGraphs(m, spec([70, 3, 224, 224])), refused(/input x: dim 0 is 70; the program allows 1 to 16/));
      await assert.rejects(prepareGraphs(m, spec([2, 3, 256, 224])), refused(/input x: dim 2 is 256; the program was exported with a static size of 224/));
      await assert.rejects(m.forward(randomTensor([17, 3, 224, 224])), refused(/dim 0 is 17/));
      await assert.rejects(mha.forward(randomTensor([2, 196, 768])), refused(/dim 0 is 2; .*static size of 4/));
      await assert.rejects(mha.forward(randomTensor([196, 768])), refused(/has rank 2/));
      const y = await mha.forward(randomTensor([4, 196, 768]));
      assert.deepEqual((y as Tensor).shape, [4, 196, 768]);
    } finally {
      m.dispose();
      mha.dispose();
    }
  });

  it('inlines a region exported with grad mode switched (a @torch.no_grad() rotary embedding, exported with gradients on): as Python does, its core lowered', async () => {
    const fx = await ensureProgram('rotary_grad_region');
    assert.ok(Object.keys((fx.graphs as Record<string, { kinds?: Record<string, number> }>).program?.kinds ?? {}).some((k) => /wrap_with_set_grad_enabled/.test(k)), 'the fixture has the region');
    assert.ok(await parity(fx) <= 1e-5);
    const m = await loadProgram(fx.program);
    try {
      const p = await prepareGraphs(m, fx.inputs.map((i) => ({ shape: i.shape, dtype: i.dtype })));
      assert.equal(p.lowering.attentionCores.length, 1);
      assert.ok(p.lowering.attentionCores[0].lowered, JSON.stringify(p.lowering.attentionCores));
    } finally {
      m.dispose();
    }
  });

  it('refuses what it cannot run with ERR_LOAD saying what it is and what to do', async () => {
    const bad = await ensureBadPrograms();
    await assert.rejects(loadProgram(bad.cond), (e: Error & { code?: string }) => e.code === 'ERR_LOAD' && /torch\.ops\.higher_order\.cond/.test(e.message) && /without data-dependent control flow/.test(e.message));
    await assert.rejects(loadProgram(bad.newer), (e: Error & { code?: string }) => e.code === 'ERR_LOAD' && /schema version is 99/.test(e.message) && /torch 2\.13/.test(e.message));
    await assert.rejects(loadProgram(bad.checkpoint), (e: Error & { code?: string }) => e.code === 'ERR_LOAD' && /no models\/<name>\.json/.test(e.message) && /torch\.export\.save/.test(e.message));
    const ok = await loadProgram(bad.plain);
    ok.dispose();
  });

  it('decomposes and lowers attention as the TorchScript twins do (mha_demo, ViT-B/16)', async () => {
    for (const [fx, name] of [[mha, 'mha_demo'], [vit, 'vit_b_16']] as const) {
      const specs = fx.inputs.map((t) => ({ shape: t.shape, dtype: 'float32' as const }));
      const counts = async (m: Module) => {
        try {
          const p = await prepareGraphs(m, specs);
          return { found: p.decomposition.report.found, decomposed: p.decomposition.report.decomposed.length, remaining: p.decomposition.remaining,
            cores: p.lowering.attentionCores.filter((c) => c.lowered).length };
        } finally { m.dispose(); }
      };
      const twin = await ensureModel(name);
      const got = await counts(await loadProgram(fx.program));
      assert.deepEqual(got, await counts(await Module.load(twin.variants.traced!)));
      assert.ok(got.decomposed >= 1 && got.cores === got.decomposed, JSON.stringify(got));
    }
  });

  // Built-in models torch.export can capture (control_flow and seq2seq_runtime_causal branch on
  // data, which export refuses in Python).
  for (const name of ['encoder_pre_norm', 'seq2seq', 'separate_projections', 'handwritten_attention', 'gqa_sdpa', 'transformer_encoder_optional', 'small_cnn_resnet']) {
    it(`${name}: as Python does, and decomposed and lowered as its TorchScript twin`, async () => {
      const fx = await ensureProgram(name);
      const d = await parity(fx);
      assert.ok(d <= 1e-5, `max abs diff ${d}`);
      const specs = fx.inputs.map((t) => ({ shape: t.shape, dtype: t.dtype }));
      const counts = async (m: Module) => {
        try {
          const p = await prepareGraphs(m, specs);
          return { decomposed: p.decomposition.report.decomposed.length, remaining: p.decomposition.remaining, cores: p.lowering.attentionCores.filter((c) => c.lowered).length };
        } finally { m.dispose(); }
      };
      // The traced twin: a scripted one keeps the path not taken too (both attention paths of nn.MultiheadAttention).
      const twin = await ensureModel(name);
      assert.deepEqual(await counts(await loadProgram(fx.program)), await counts(await Module.load(twin.variants.traced ?? builtinFile(twin))));
    });
  }

  // torch.export records nn.MultiheadAttention as F.multi_head_attention_forward spells it (one
  // packed linear, then unflatten/transpose/contiguous and proj[i]); the TorchScript fast path is
  // decomposed by torchgraph into one linear per row slice. Both must group and lower alike.
  it('the .pt2 and the .pt of a model get the same lowerings (packed in-projections: one GEMM each)', async () => {
    const lowered = async (m: Module, specs: InputSpec[]) => {
      try {
        const p = await prepareGraphs(m, specs);
        return describeLowering(p.lowering).map((l) => `${l.kind}: ${l.lowered ?? '-'} of ${l.total}`);
      } finally { m.dispose(); }
    };
    for (const name of ['mha_demo', 'encoder_pre_norm', 'seq2seq', 'transformer_encoder_optional', 'separate_projections']) {
      const fx = await ensureProgram(name);
      const twin = await ensureModel(name);
      const specs = fx.inputs.map((t) => ({ shape: t.shape, dtype: t.dtype }));
      const pt2 = await lowered(await loadProgram(fx.program), specs);
      const pt = await lowered(await Module.load(twin.variants.traced ?? builtinFile(twin)), specs);
      assert.deepEqual(pt2, pt, name);
      if (name !== 'separate_projections') assert.ok(pt2.some((l) => /^parallel projections: [1-9]/.test(l)), `${name}: ${pt2.join('; ')}`);
    }
  });

  it('validate and inspect take a .pt2 (MultiheadAttention one call); bad files exit 2', async () => {
    // No --input: a program's float inputs of fixed shape default to random tensors of the example's shape.
    const r = runCli(['validate', mha.program, '--json']);
    assert.equal(r.code, 0, r.err);
    const report = JSON.parse(r.out);
    assert.deepEqual(report.inputs.map((i: { name: string; shape: number[] }) => [i.name, i.shape]), [['x', [4, 196, 768]]]);
    assert.equal(report.attention.decomposed, 1);
    assert.ok(report.checks.every((c: { passed: boolean }) => c.passed), JSON.stringify(report.checks));
    const i = runCli(['inspect', mha.program]);
    assert.equal(i.code, 0, i.err);
    assert.match(i.out, /call_module:MultiheadAttention\(%attn, /);
    const bad = await ensureBadPrograms();
    const b = runCli(['validate', bad.cond, '--input', '2x8']);
    assert.equal(b.code, 2, b.err);
    assert.match(b.err, /higher_order\.cond/);
    const n = runCli(['validate', bad.newer]);
    assert.equal(n.code, 2, n.err);
    assert.match(oneLine(n.err), /schema version is 99/);
  });
});
