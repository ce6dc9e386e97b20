// The native addon against real libtorch and real exported models.
import { strict as assert } from 'assert';
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Module, Tensor, TorchGraphError, runtimeInfo, flattenTensors, type TypedArray } from '../../lib';
import { binding } from '../../lib/torchscript/binding';
import { ensureModel, type ModelFixture } from '../../lib/app/models';
import { maxAbsDiff, tensorFromFile } from '../support/tensors';

const ROOT = path.resolve(__dirname, '..', '..');

async function rejectsWith(p: Promise<unknown>, code: string, pattern: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof TorchGraphError, `expected a TorchGraphError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, pattern);
    return true;
  });
}

describe('addon: tensors', () => {
  it('reports the libtorch it was built against (the one setup resolved and recorded)', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const recorded = (require(path.join(ROOT, 'scripts', 'libtorch.js')) as { recorded(): { version: string; cuda: boolean } }).recorded();
    // The addon says 2.13.0 where the Python package says 2.13.0+cpu.
    assert.equal(runtimeInfo().torchVersion, recorded.version.replace(/\+.*$/, ''));
    assert.equal(runtimeInfo().libtorchHasCuda, recorded.cuda);
  });

  const cases: [string, TypedArray][] = [
    ['float32', new Float32Array([1.5, -2, 3.25, 0, 7, -0.5])],
    ['float64', new Float64Array([1e-300, 2, -3, 4, 5, 6])],
    ['int32', new Int32Array([1, -2, 3, 2147483647, 5, 6])],
    ['int64', new BigInt64Array([1n, -2n, 9007199254740993n, -(2n ** 62n), 5n, 6n])],
    ['uint8', new Uint8Array([0, 1, 2, 254, 255, 7])],
    ['bool', new Uint8Array([1, 0, 1, 1, 0, 0])],
  ];
  for (const [dtype, data] of cases) {
    it(`round-trips ${dtype} with shape and dtype preserved`, () => {
      const t = Tensor.from(data, [2, 3], dtype as never);
      assert.deepEqual(t.shape, [2, 3]);
      assert.equal(t.dtype, dtype);
      assert.equal(t.device, 'cpu');
      const back = t.data();
      assert.equal(back.constructor, data.constructor);
      assert.deepEqual(Array.from(back as ArrayLike<number | bigint>), Array.from(data as ArrayLike<number | bigint>));
      t.dispose();
    });
  }

  it('rejects data whose size does not match the shape', () => {
    assert.throws(() => Tensor.from(new Float32Array(5), [2, 3]), (e: TorchGraphError) => e.code === 'ERR_INVALID_ARG' && /needs 24/.test(e.message));
    assert.throws(() => Tensor.from(new Float32Array(6), [2, 3], 'float16x' as never), (e: TorchGraphError) => e.code === 'ERR_INVALID_ARG');
  });

  it('throws ERR_DISPOSED after dispose, and dispose twice is harmless', () => {
    const t = Tensor.from(new Float32Array(4), [4]);
    t.dispose();
    t.dispose();
    assert.equal(t.disposed, true);
    assert.throws(() => t.shape, (e: TorchGraphError) => e.code === 'ERR_DISPOSED');
  });

  it('counts tensor storage in the tracking allocator', () => {
    const before = binding().memoryStats().cpuLiveBytes;
    const t = Tensor.empty([1024, 256], 'float32');
    assert.equal(binding().memoryStats().cpuLiveBytes - before, 1024 * 256 * 4);
    t.dispose();
    assert.equal(binding().memoryStats().cpuLiveBytes, before);
  });

  it('refuses a device that is not there', function () {
    if (runtimeInfo().cudaAvailable) this.skip();
    assert.throws(() => Tensor.empty([2], 'float32', 'cuda'), (e: TorchGraphError) => e.code === 'ERR_NO_DEVICE' && /CUDA is not available/.test(e.message));
    assert.throws(() => Tensor.empty([2], 'float32', 'tpu'), (e: TorchGraphError) => e.code === 'ERR_INVALID_ARG');
  });
});

describe('addon: real models', function () {
  let demo: ModelFixture;
  let vit: ModelFixture;
  before(async function () {
    this.timeout(900_000);
    demo = await ensureModel('mha_demo');
    vit = await ensureModel('vit_b_16');
  });

  for (const variant of ['traced', 'scripted', 'traced_grad'] as const) {
    it(`mha_demo ${variant}: forward from Node equals PyTorch's output`, async () => {
      const m = await Module.load(demo.variants[variant]!);
      const x = tensorFromFile(demo.inputs[0]);
      const out = (await m.forward(x)) as Tensor;
      const diff = maxAbsDiff(out, demo.outputs[0]);
      console.log(`      mha_demo ${variant}: max abs diff ${diff.toExponential(2)}`);
      assert.ok(diff <= 1e-5, `diff ${diff}`);
      m.dispose();
    });
  }

  for (const variant of ['traced', 'scripted'] as const) {
    it(`vit_b_16 ${variant}: forward from Node equals PyTorch's output`, async () => {
      const t0 = performance.now();
      const m = await Module.load(vit.variants[variant]!);
      const tLoad = performance.now() - t0;
      const x = tensorFromFile(vit.inputs[0]);
      const t1 = performance.now();
      const out = (await m.forward(x)) as Tensor;
      const tFwd = performance.now() - t1;
      assert.deepEqual(out.shape, [1, 1000]);
      const diff = maxAbsDiff(out, vit.outputs[0]);
      console.log(`      vit_b_16 ${variant}: load ${tLoad.toFixed(0)} ms, first forward ${tFwd.toFixed(0)} ms, max abs diff ${diff.toExponential(2)}`);
      assert.ok(diff <= 1e-5, `diff ${diff}`);
      // The classifier head is not zero: the comparison means something.
      assert.ok(Math.max(...Array.from(out.data() as Float32Array, Math.abs)) > 1e-3);
      m.dispose();
    });
  }

  it('vit_b_16: module tree, class types, parameters and buffers like torchvision', async () => {
    const m = await Module.load(vit.variants.traced!);
    const tree = m.tree();
    assert.match(tree.type, /VisionTransformer$/);
    assert.deepEqual(tree.children.map((c) => c.name), ['conv_proj', 'encoder', 'heads']);
    const params = m.parameters();
    assert.equal(params.length, 152);
    assert.ok(params.some((p) => p.qualifiedName === 'encoder.layers.encoder_layer_11.self_attention.in_proj_weight' &&
      p.shape.join('x') === '2304x768' && p.dtype === 'float32' && p.bytes === 2304 * 768 * 4));
    const count = params.reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0);
    assert.equal(count, vit.parameters.count);
    assert.equal(m.parameterBytes, vit.parameters.bytes);
    const mha = tree.children[1].children.find((c) => c.name === 'layers')!.children[0].children.find((c) => c.name === 'self_attention')!;
    assert.match(mha.type, /MultiheadAttention$/);
    m.dispose();
  });

  it('scripted modules keep plain attributes (num_heads, batch_first)', async () => {
    const m = await Module.load(demo.variants.scripted!);
    const attn = m.tree().children.find((c) => /MultiheadAttention$/.test(c.type))!;
    assert.equal(attn.attributes.num_heads, 12);
    assert.equal(attn.attributes.batch_first, true);
    assert.equal(attn.attributes.head_dim, 64);
    m.dispose();
  });

  it('wrong input shapes and dtypes reject with the libtorch reason; the process goes on', async () => {
    const m = await Module.load(demo.variants.traced!);
    await rejectsWith(m.forward(Tensor.from(new Float32Array(4 * 7 * 5), [4, 7, 5])), 'ERR_TORCH', /shape|size|mat|normalized/i);
    await rejectsWith(m.forward(Tensor.from(new BigInt64Array(2 * 768), [1, 2, 768])), 'ERR_TORCH', /dtype|type|Long|Float/i);
    await rejectsWith(m.run('nope', []), 'ERR_INVALID_ARG', /no method 'nope'/);
    const ok = (await m.forward(tensorFromFile(demo.inputs[0]))) as Tensor;
    assert.deepEqual(ok.shape, [4, 196, 768]);
    m.dispose();
    await rejectsWith(m.forward(ok), 'ERR_DISPOSED', /disposed/);
  });

  it('malformed calls to the raw addon throw or reject with a code; the process goes on', async () => {
    const m = await binding().load(demo.variants.traced!);
    const calls: (() => unknown)[] = [
      () => m.buildGraph({} as never), () => m.buildGraph(null as never),
      () => m.buildGraph({ inputs: [], outputs: [99], nodes: [] }),
      () => m.buildGraph({ inputs: [{ id: 0, type: { kind: 'Tensor' } }], outputs: [1], nodes: [{ kind: 'relu', inputs: [0], outputs: [{ id: 1, type: { kind: 'Tensor' } }], attrs: {}, blocks: [] }] }),
      () => m.exportGraph('forward', { path: 'a.b' }), () => m.exportFunction('no.such.fn'),
      () => binding().Tensor.fromTypedArray([1, 2] as never, [2], 'float32'),
      () => binding().Tensor.fromTypedArray(new Float32Array(2), ['a'] as never, 'float32'),
      () => binding().Tensor.empty([1e12, 1e12], 'float32'),
      () => m.run('forward', 'x' as never), () => m.inferValues({} as never, [], { nodeByNode: true, metaParameters: false }),
    ];
    for (const [i, call] of calls.entries()) {
      let error: (Error & { code?: string }) | undefined;
      try { await call(); } catch (e) { error = e as Error & { code?: string }; }
      assert.ok(error, `call ${i} did not fail`);
      assert.match(error!.code ?? '', /^ERR_/, `call ${i}: ${error!.message}`);
    }
    m.dispose();
  });

  it('dispose() during a run is safe: the run holds its own reference', async () => {
    const m = await Module.load(demo.variants.traced!);
    const p = m.forward(tensorFromFile(demo.inputs[0]));
    m.dispose();
    const out = (await p) as Tensor;
    assert.deepEqual(out.shape, [4, 196, 768]);
  });

  it('measures the peak of live tensor storage during a run', async () => {
    const m = await Module.load(demo.variants.traced!);
    const x = tensorFromFile(demo.inputs[0]);
    const r = await m.run('forward', [x], { measureMemory: true });
    const out = flattenTensors(r.output)[0];
    // At least the output stays alive; the LayerNorm output and the attention block also live at once.
    assert.ok(r.peakBytes >= out.nbytes * 2, `peak ${r.peakBytes}`);
    assert.ok(r.peakBytes < 200 * 2 ** 20, `peak ${r.peakBytes}`);
    m.dispose();
  });

  it('loading on cuda without a GPU is a clear error', async function () {
    if (runtimeInfo().cudaAvailable) this.skip();
    await rejectsWith(Module.load(demo.variants.traced!, { device: 'cuda' }), 'ERR_NO_DEVICE', /CUDA is not available/);
  });

  describe('bad model files reject with a clear message', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'torchgraph-bad-'));
    before(function () {
      this.timeout(120_000);
      fs.writeFileSync(path.join(dir, 'empty.pt'), '');
      fs.writeFileSync(path.join(dir, 'text.pt'), 'this is not a model\n');
      const whole = fs.readFileSync(demo.variants.traced!);
      fs.writeFileSync(path.join(dir, 'truncated.pt'), whole.subarray(0, Math.floor(whole.length / 2)));
      const py = require('../../scripts/libtorch.js').current().python;
      execFileSync(py.exe, [path.join(ROOT, 'scripts', 'make_bad_inputs.py'), dir], { env: { ...process.env, PYTHONPATH: py.pythonPath } });
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    const cases: [string, RegExp][] = [
      ['missing.pt', /no such file/],
      ['empty.pt', /the file is empty/],
      ['text.pt', /not a TorchScript zip archive/],
      ['truncated.pt', /truncated|not a TorchScript|central directory/],
      ['state_dict.pt', /torch\.save\(\) checkpoint, not a TorchScript archive/],
      ['pickled_module.pt', /torch\.save\(\) checkpoint, not a TorchScript archive/],
    ];
    for (const [file, pattern] of cases) {
      it(file, async () => {
        await rejectsWith(Module.load(path.join(dir, file)), 'ERR_LOAD', pattern);
      });
    }
    it('a directory', async () => {
      await rejectsWith(Module.load(dir), 'ERR_LOAD', /directory/);
    });
  });
});

describe('addon: the prebuildify route', () => {
  it('a prebuild made by prebuildify loads in a fresh process and runs a model', async function () {
    this.timeout(120_000);
    const dir = path.join(ROOT, 'prebuilds', `${process.platform}-${process.arch}`);
    const file = fs.existsSync(dir) ? fs.readdirSync(dir).find((f) => f.endsWith('.node')) : undefined;
    if (!file) {
      if (process.env.TORCHGRAPH_PREBUILD_REQUIRED) assert.fail('no prebuild in prebuilds/: `npm run prebuild` did not run');
      this.skip();
    }
    const demo = await ensureModel('mha_demo');
    const script = `
      const { Module, Tensor } = require(${JSON.stringify(path.join(ROOT, 'lib'))});
      const { readNpy } = require(${JSON.stringify(path.join(ROOT, 'lib', 'torchscript', 'npy'))});
      (async () => {
        const a = readNpy(${JSON.stringify(demo.inputs[0].file)});
        const m = await Module.load(${JSON.stringify(demo.variants.traced!)});
        const out = await m.forward(Tensor.from(a.data, a.shape));
        console.log(JSON.stringify(out.shape));
      })().catch((e) => { console.error(e); process.exit(1); });`;
    const r = spawnSync(process.execPath, ['--require', 'tsx/cjs', '-e', script], {
      cwd: ROOT, encoding: 'utf8', env: { ...process.env, TORCHGRAPH_ADDON: path.join(dir, file!), LD_LIBRARY_PATH: '' },
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), '[4,196,768]');
  });

  it('an addon that cannot be loaded gives an error that says how to fix it', () => {
    // The failure classes (missing libtorch, symbol mismatch, not built) are unit-tested in
    // test/unit/binding.test.ts; here a real failed load in a fresh process.
    const r = spawnSync(process.execPath, ['--require', 'tsx/cjs', '-e',
      `try { require(${JSON.stringify(path.join(ROOT, 'lib', 'torchscript', 'binding'))}).binding(); } catch (e) { console.log(e.code); console.log(e.message); }`],
    { cwd: ROOT, encoding: 'utf8', env: { ...process.env, TORCHGRAPH_ADDON: '/nonexistent/torchgraph.node' } });
    assert.match(r.stdout, /ERR_ADDON/);
    assert.match(r.stdout, /could not load the native addon/);
    assert.match(r.stdout, /Fix:/);
  });
});
