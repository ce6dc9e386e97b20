// Graph export, views, build-back and shape propagation on real models.
import { strict as assert } from 'assert';
import { Module, Tensor, TorchGraphError } from '../../lib';
import { binding } from '../../lib/torchscript/binding';
import { Graph, GraphVerifyError } from '../../lib/core/ir';
import { ensureModel, type ModelFixture } from '../../lib/app/models';
import { opName } from '../../lib/transforms/module-calls';
import { propagateShapes } from '../../lib/torchscript/propagate-shapes';
import { tensorInfo } from '../../lib/core/value-info';
import { exportView } from '../../lib/transforms/module-views';
import { diffAgainst, runGraph } from '../support/graphs';
import { maxAbsDiff, tensorFromFile } from '../support/tensors';

function counts(g: Graph): Record<string, number> {
  const c: Record<string, number> = {};
  for (const n of g.allNodes()) c[opName(n)] = (c[opName(n)] ?? 0) + 1;
  return c;
}

describe('graph IR on real models', function () {
  const fx: Record<string, ModelFixture> = {};
  before(async function () {
    this.timeout(900_000);
    for (const name of ['mha_demo', 'vit_b_16', 'control_flow'] as const) fx[name] = await ensureModel(name);
  });

  describe('export', () => {
    it('exports kinds, schemas, full types, scopes and sources (traced ViT, inlined)', async () => {
      const m = await Module.load(fx.vit_b_16.variants.traced!);
      const data = exportView(m, 'inlined').graph.toData();
      assert.equal(data.inputs[0].type.kind, 'Class');
      const mha = data.nodes.filter((n) => n.kind === 'aten::_native_multi_head_attention');
      assert.equal(mha.length, 12);
      assert.match(mha[0].schema!, /^aten::_native_multi_head_attention\(Tensor query, Tensor key/);
      const frames = mha[3].scope!;
      assert.equal(frames.at(-1)!.path, 'encoder.layers.encoder_layer_3.self_attention');
      assert.match(frames.at(-1)!.cls, /MultiheadAttention$/);
      assert.ok(mha[3].source && /\.py:\d+$/.test(mha[3].source));
      const ints = data.nodes.filter((n) => n.kind === 'prim::Constant' && n.attrs.value?.kind === 'i');
      assert.ok(ints.length > 0 && ints.every((n) => typeof n.attrs.value.value === 'bigint'));
      m.dispose();
    });

    it('exports prim::If and prim::Loop blocks of scripted models', async () => {
      const m = await Module.load(fx.control_flow.variants.scripted!);
      const g = Graph.fromData(m._native.exportGraph('forward', { inline: true }));
      const kinds = new Set(g.allNodes().map((n) => n.kind));
      assert.ok(kinds.has('prim::Loop') && kinds.has('prim::If'));
      const loop = g.allNodes().find((n) => n.kind === 'prim::Loop')!;
      assert.equal(loop.blocks.length, 1);
      g.verify();
      m.dispose();
    });
  });

  describe('views', () => {
    it('standard view of ViT keeps torch.nn leaf modules as calls and inlines the containers', async () => {
      const m = await Module.load(fx.vit_b_16.variants.traced!);
      const { graph, report } = exportView(m, 'standard');
      const c = counts(graph);
      assert.equal(c['call_module:MultiheadAttention'], 12);
      assert.equal(c['call_module:LayerNorm'], 25);
      assert.equal(c['call_module:Linear'], 25);
      assert.equal(c['call_module:Conv2d'], 1);
      assert.ok(!Object.keys(c).some((k) => /EncoderBlock|Encoder$|MLPBlock|Sequential/.test(k)), JSON.stringify(c));
      assert.ok(report.inline!.inlinedCalls >= 14);
      m.dispose();
    });

    it('inlined view of ViT has only aten/prim ops and 12 fast-path attentions', async () => {
      const m = await Module.load(fx.vit_b_16.variants.traced!);
      const { graph } = exportView(m, 'inlined');
      const c = counts(graph);
      assert.equal(c['prim::CallMethod'], undefined);
      assert.equal(c['aten::_native_multi_head_attention'], 12);
      m.dispose();
    });

    it('scripted views fold what module attributes decide and report what remains', async () => {
      const m = await Module.load(fx.mha_demo.variants.scripted!);
      const { graph, report } = exportView(m, 'inlined');
      assert.ok(report.fold.attributesFolded > 0 && report.fold.ifsResolved > 0, JSON.stringify(report.fold));
      const ifs = graph.allNodes().filter((n) => n.kind === 'prim::If').length;
      assert.equal(report.fold.remaining.filter((r) => r.kind === 'prim::If').length, ifs);
      assert.ok(ifs > 0, 'run-time checks (grad mode, tensor properties) remain and are reported');
      m.dispose();
    });
  });

  describe('build back and run', () => {
    for (const name of ['mha_demo', 'vit_b_16', 'control_flow'] as const) {
      for (const variant of ['traced', 'scripted'] as const) {
        for (const view of ['standard', 'inlined'] as const) {
          it(`${name} ${variant} ${view}: export -> TS -> build -> run is bit-identical`, async () => {
            const m = await Module.load(fx[name].variants[variant]!);
            const { graph } = exportView(m, view);
            const diffs = await diffAgainst(m, graph, fx[name]);
            assert.deepEqual(diffs, fx[name].outputs.map(() => 0));
            m.dispose();
          });
        }
      }
    }

    it('a built graph shares the module parameters: no parameter bytes are copied', async () => {
      const m = await Module.load(fx.vit_b_16.variants.traced!);
      const { graph } = exportView(m, 'inlined');
      const before = binding().memoryStats().cpuLiveBytes;
      const built = m._native.buildGraph(graph.toData());
      const after = binding().memoryStats().cpuLiveBytes;
      assert.ok(after - before < 1024 * 1024, `building grew live tensor bytes by ${after - before}`);
      built.dispose();
      m.dispose();
    });

    it('a hand-edited graph runs: relu appended to mha_demo', async () => {
      const m = await Module.load(fx.mha_demo.variants.traced!);
      const { graph } = exportView(m, 'inlined');
      const out = graph.outputs[0];
      const relu = graph.createNode('aten::relu', [out], [{ kind: 'Tensor' }]);
      graph.setOutputs([relu.output]);
      graph.verify();
      const x = tensorFromFile(fx.mha_demo.inputs[0]);
      const [got] = await runGraph(m, graph, [x]);
      const ref = tensorFromFile(fx.mha_demo.outputs[0]);
      const expected = Tensor.from(Float32Array.from(ref.data() as Float32Array, (v) => Math.max(0, v)), ref.shape);
      assert.equal(maxAbsDiff(got, expected), 0);
      m.dispose();
    });

    it('an unknown op is a precise error naming the node', async () => {
      const m = await Module.load(fx.mha_demo.variants.traced!);
      const { graph } = exportView(m, 'inlined');
      const ln = graph.allNodes().find((n) => n.kind === 'aten::layer_norm')!;
      ln.kind = 'aten::layer_norn';
      assert.throws(() => m._native.buildGraph(graph.toData()),
        (e: Error & { code?: string }) => e.code === 'ERR_GRAPH' && /node #\d+ \(aten::layer_norn -> %query/.test(e.message) && /no libtorch operator/.test(e.message));
      m.dispose();
    });

    it('a graph that fails verify() names the node', async () => {
      const m = await Module.load(fx.mha_demo.variants.traced!);
      const { graph } = exportView(m, 'inlined');
      const add = graph.allNodes().find((n) => n.kind === 'aten::add')!;
      const ln = graph.allNodes().find((n) => n.kind === 'aten::layer_norm')!;
      ln.insertAfter(add); // now used before it is defined
      assert.throws(() => graph.verify(), (e: unknown) => e instanceof GraphVerifyError && /aten::_native_multi_head_attention|aten::layer_norm/.test((e as Error).message));
      m.dispose();
    });

    it('an unsupported type is a precise error', async () => {
      const m = await Module.load(fx.mha_demo.variants.traced!);
      const data = m._native.exportGraph('forward', { inline: true });
      data.nodes[0].outputs[0].type = { kind: 'Other', repr: 'Generator' };
      assert.throws(() => m._native.buildGraph(data), (e: Error & { code?: string }) => e.code === 'ERR_GRAPH' && /node #0 .*unsupported type 'Generator'/.test(e.message));
      m.dispose();
    });
  });

  describe('shape propagation', () => {
    it('ViT traced, inlined: all on meta tensors, output 1x1000, attention 1x197x768', async () => {
      const m = await Module.load(fx.vit_b_16.variants.traced!);
      const { graph } = exportView(m, 'inlined');
      const r = await propagateShapes(graph, m, [{ shape: [1, 3, 224, 224], dtype: 'float32' }]);
      assert.equal(r.mode, 'meta-nodes');
      assert.deepEqual(r.opsWithoutMeta, {});
      assert.deepEqual(tensorInfo(graph.outputs[0])!.shape, [1, 1000]);
      const mha = graph.allNodes().find((n) => n.kind === 'aten::_native_multi_head_attention')!;
      assert.deepEqual(tensorInfo(mha.outputs[0])!.shape, [1, 197, 768]);
      assert.equal(tensorInfo(mha.outputs[0])!.bytes, 197 * 768 * 4);
      m.dispose();
    });

    it('dynamic sizes (aten::size feeding view) propagate: slow-path ViT at batch 3', async () => {
      const m = await Module.load(fx.vit_b_16.variants.traced_grad!);
      const { graph } = exportView(m, 'inlined');
      await propagateShapes(graph, m, [{ shape: [3, 3, 224, 224], dtype: 'float32' }]);
      const views = graph.allNodes().filter((n) => n.kind === 'aten::view' && tensorInfo(n.output));
      const shapes = new Set(views.map((n) => tensorInfo(n.output)!.shape.join('x')));
      // q/k/v split into heads for 3 images: (197, 3 * 12, 64).
      assert.ok(shapes.has('197x36x64'), [...shapes].join(' '));
      assert.deepEqual(tensorInfo(graph.outputs[0])!.shape, [3, 1000]);
      m.dispose();
    });

    it('scripted graphs with control flow fall back to a real run and say why', async () => {
      const m = await Module.load(fx.control_flow.variants.scripted!);
      const { graph } = exportView(m, 'inlined');
      const r = await propagateShapes(graph, m, [{ shape: [2, 16], dtype: 'float32' }]);
      assert.equal(r.mode, 'real');
      assert.ok(r.fallbackReason && r.fallbackReason.length > 0);
      m.dispose();
    });

    it('wrong input count is an ERR_INVALID_ARG', async () => {
      const m = await Module.load(fx.mha_demo.variants.traced!);
      const { graph } = exportView(m, 'inlined');
      await assert.rejects(propagateShapes(graph, m, []), (e: TorchGraphError) => e.code === 'ERR_INVALID_ARG');
      m.dispose();
    });
  });
});
