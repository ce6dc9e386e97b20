import { strict as assert } from 'assert';
import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ensureMhaVariants, ensureModel, MhaVariantSpec, ModelFixture, variantPath, VARIANT_NAMES } from '../../lib/app/models';
import { readNpy } from '../../lib/torchscript/npy';
import { libtorchScript, type PythonInfo } from '../../lib/torchscript/package-scripts';
import { packageRoot } from '../../lib/torchscript/package-root';

/** The Python that has torch, or why there is none (then the suite is skipped). */
function findPython(): PythonInfo | string {
  try {
    const info = libtorchScript().current();
    if (!info) return 'no torch configured (run npm install, or set TORCHGRAPH_PYTHON)';
    if (!info.python) return 'torch is a bare libtorch; model export needs a Python torch (set TORCHGRAPH_PYTHON)';
    return info.python;
  } catch (e) {
    return (e as Error).message;
  }
}

function pythonEnv(py: PythonInfo): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PYTHONDONTWRITEBYTECODE: '1' };
  if (py.pythonPath) env.PYTHONPATH = [py.pythonPath, process.env.PYTHONPATH].filter(Boolean).join(path.delimiter);
  return env;
}

function attentionOps(fx: ModelFixture, variant: 'traced' | 'traced_grad' | 'scripted'): Record<string, number> {
  const kinds = fx.graphs[variant]?.kinds ?? {};
  return {
    native: kinds['aten::_native_multi_head_attention'] ?? 0,
    sdpa: kinds['aten::scaled_dot_product_attention'] ?? 0,
  };
}

function checkFixtureFiles(fx: ModelFixture): void {
  assert.ok(fs.existsSync(fx.manifestPath));
  for (const v of VARIANT_NAMES) {
    assert.ok(fx.variants[v], `${fx.name}: ${v} missing: ${fx.errors[v]}`);
    assert.ok(path.isAbsolute(fx.variants[v]!));
    assert.ok(fs.statSync(fx.variants[v]!).size > 0);
    assert.equal(fx.maxAbsDiff[v] !== undefined && fx.maxAbsDiff[v]! <= 1e-4, true, `${fx.name} ${v}: diff ${fx.maxAbsDiff[v]}`);
  }
  for (const t of [...fx.inputs, ...fx.outputs]) {
    const a = readNpy(t.file);
    assert.deepEqual(a.shape, t.shape, t.file);
    assert.equal(a.dtype, t.dtype, t.file);
  }
}

describe('fixture models (integration)', function () {
  this.timeout(600_000);
  let py: PythonInfo;

  before(function () {
    const found = findPython();
    if (typeof found === 'string') {
      console.log(`      skipped: ${found}`);
      this.skip();
    }
    py = found as PythonInfo;
  });

  describe('mha_demo', () => {
    let first: ModelFixture;

    it('exports (or finds) mha_demo with a complete manifest', async () => {
      first = await ensureModel('mha_demo');
      assert.equal(first.name, 'mha_demo');
      assert.equal(first.kind, 'model');
      assert.match(first.torch, /^\d+\.\d+/);
      assert.equal(typeof first.seed, 'number');
      assert.match(first.key, /^[0-9a-f]{16}$/);
      assert.equal(path.basename(path.dirname(first.dir)), first.key);
      assert.deepEqual(first.errors, {});
      checkFixtureFiles(first);
      assert.deepEqual(first.inputs.map((t) => [t.name, t.shape, t.dtype]), [['x', [4, 196, 768], 'float32']]);
      assert.deepEqual(first.outputs.map((t) => [t.name, t.shape, t.dtype]), [['out', [4, 196, 768], 'float32']]);
      // LayerNorm(768) 1,536 + in_proj 1,771,776 + out_proj 590,592
      assert.deepEqual(first.parameters, { count: 2_363_904, bytes: 4 * 2_363_904, tensors: 6 });
      const x = readNpy(first.inputs[0].file).data as Float32Array;
      const y = readNpy(first.outputs[0].file).data as Float32Array;
      assert.equal(x.length, 4 * 196 * 768);
      assert.ok(y.some((v, i) => v !== x[i]), 'attention must change the output');
      // no_grad trace records the fast path; need_weights=True keeps the slow path off SDPA.
      assert.deepEqual(attentionOps(first, 'traced'), { native: 1, sdpa: 0 });
      assert.equal(attentionOps(first, 'traced_grad').native, 0);
      assert.equal(variantPath(first, 'scripted'), first.variants.scripted);
    });

    it('a second call is a cache hit and re-exports nothing', async () => {
      const before = fs.statSync(first.manifestPath).mtimeMs;
      const t0 = Date.now();
      const again = await ensureModel('mha_demo');
      const ms = Date.now() - t0;
      assert.equal(again.cacheHit, true);
      assert.ok(ms < 1000, `cache hit took ${ms} ms`);
      assert.equal(again.dir, first.dir);
      assert.equal(fs.statSync(first.manifestPath).mtimeMs, before);
    });
  });

  it('control_flow: scripting keeps prim::Loop and prim::If, tracing unrolls them', async () => {
    const fx = await ensureModel('control_flow');
    checkFixtureFiles(fx);
    assert.equal(fx.outputs.length, 2);
    const scripted = fx.graphs.scripted!.kinds;
    assert.ok((scripted['prim::Loop'] ?? 0) >= 1 && (scripted['prim::If'] ?? 0) >= 1, JSON.stringify(scripted));
    const traced = fx.graphs.traced!.kinds;
    assert.equal(traced['prim::Loop'] ?? 0, 0);
    assert.equal(traced['prim::If'] ?? 0, 0);
  });

  it('vit_b_16: 12 fast-path attentions traced, 12 SDPA traced with grad', async function () {
    if (process.env.TORCHGRAPH_SKIP_VIT === '1') this.skip();
    const fx = await ensureModel('vit_b_16', { log: () => undefined });
    checkFixtureFiles(fx);
    assert.deepEqual(fx.inputs[0].shape, [1, 3, 224, 224]);
    assert.deepEqual(fx.outputs[0].shape, [1, 1000]);
    assert.deepEqual(fx.parameters, { count: 86_567_656, bytes: 4 * 86_567_656, tensors: 152 });
    assert.deepEqual(attentionOps(fx, 'traced'), { native: 12, sdpa: 0 });
    assert.deepEqual(attentionOps(fx, 'traced_grad'), { native: 0, sdpa: 12 });
    const logits = readNpy(fx.outputs[0].file).data as Float32Array;
    assert.ok(logits.every(Number.isFinite));
    assert.ok(new Set(logits).size > 900, 'the classifier head must not be zero');
  });

  it('scripts/vit.py matches torchvision (skipped where torchvision does not import)', function () {
    const r = spawnSync(py.exe, [path.join(packageRoot(), 'scripts', 'check_vit_against_torchvision.py')],
      { env: pythonEnv(py), encoding: 'utf8', timeout: 300_000 });
    const out = `${r.stdout}${r.stderr}`.trim();
    if (r.status === 3) {
      console.log(`      ${out.split('\n').find((l) => l.startsWith('SKIP:')) ?? out}`);
      this.skip();
    }
    assert.equal(r.status, 0, out);
    assert.match(out, /^OK: 152 state_dict keys/m);
  });

  describe('attention variants', () => {
    const specs: MhaVariantSpec[] = [
      { id: 'it_self_bf', embed_dim: 16, num_heads: 4, batch_first: true, L: 5, B: 2, need_weights: false },
      { id: 'it_cross_kv', embed_dim: 12, num_heads: 3, kdim: 8, vdim: 6, L: 3, S: 7, B: 2, cross: true,
        add_bias_kv: true, attn_mask: 'bool2d', key_padding_mask: 'bool', average_attn_weights: false },
      { id: 'it_nobias', embed_dim: 8, num_heads: 2, bias: false, L: 4, B: 0 },
      { id: 'it_causal_without_mask', embed_dim: 8, num_heads: 2, is_causal: true },
    ];

    it('exports a batch, recording what fails instead of failing', async () => {
      const batch = await ensureMhaVariants(specs);
      assert.deepEqual(batch.fixtures.map((f) => f.name), specs.map((s) => s.id));
      assert.ok(fs.existsSync(path.join(batch.dir, 'index.json')));

      const self = batch.byId.it_self_bf;
      checkFixtureFiles(self);
      assert.equal(self.spec.batch_first, true);
      assert.deepEqual(self.inputs.map((t) => t.name), ['x']);
      assert.deepEqual(self.outputs.map((t) => t.name), ['out']);
      assert.deepEqual(attentionOps(self, 'traced'), { native: 1, sdpa: 0 });
      assert.deepEqual(attentionOps(self, 'traced_grad'), { native: 0, sdpa: 1 });

      const cross = batch.byId.it_cross_kv;
      checkFixtureFiles(cross);
      assert.deepEqual(cross.inputs.map((t) => [t.name, t.shape, t.dtype]), [
        ['query', [3, 2, 12], 'float32'], ['key', [7, 2, 8], 'float32'], ['value', [7, 2, 6], 'float32'],
        ['attn_mask', [3, 7], 'bool'], ['key_padding_mask', [2, 7], 'bool']]);
      assert.deepEqual(cross.outputs.map((t) => [t.name, t.shape]), [['out', [3, 2, 12]], ['attn_weights', [2, 3, 3, 8]]]);
      const mask = readNpy(cross.inputs[3].file).data as Uint8Array;
      for (let row = 0; row < 3; row++) assert.equal(mask[row * 7], 0, 'column 0 is never masked');
      const w = readNpy(cross.outputs[1].file).data as Float32Array;
      assert.ok(w.every(Number.isFinite), 'no fully masked rows');

      // nn.MultiheadAttention(bias=False) does not script in torch 2.x; tracing still works.
      const nobias = batch.byId.it_nobias;
      assert.ok(nobias.variants.traced && nobias.variants.traced_grad);
      if (!nobias.variants.scripted) {
        assert.match(nobias.errors.scripted!, /NoneType/);
        assert.throws(() => variantPath(nobias, 'scripted'), /has no scripted variant/);
      }

      const bad = batch.byId.it_causal_without_mask;
      assert.deepEqual(bad.variants, {});
      assert.match(bad.errors.eager!, /is_causal/);

      const again = await ensureMhaVariants(specs);
      assert.equal(again.cacheHit, true);
      assert.equal(again.dir, batch.dir);
    });

    it('rejects with the exporter\'s message when the spec is bad', async () => {
      const saved = process.env.TORCHGRAPH_MODELS_DIR;
      const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tg-models-'));
      process.env.TORCHGRAPH_MODELS_DIR = tmp;
      try {
        const bogus = [{ id: 'x', embed_dim: 8, num_heads: 2, colour: 'red' } as unknown as MhaVariantSpec];
        await assert.rejects(ensureMhaVariants(bogus), (e: Error) => {
          assert.match(e.message, /exporting 1 attention configs failed/);
          assert.match(e.message, /unknown fields \['colour'\]/);
          return true;
        });
        await assert.rejects(ensureModel('resnet'), /unknown fixture model 'resnet'/);
      } finally {
        if (saved === undefined) delete process.env.TORCHGRAPH_MODELS_DIR;
        else process.env.TORCHGRAPH_MODELS_DIR = saved;
        fs.rmSync(tmp, { recursive: true, force: true });
      }
    });
  });

  it('two processes asking at once export once', async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tg-models-'));
    try {
      const cli = path.join(packageRoot(), 'scripts', 'export-models.ts');
      const run = () => new Promise<{ code: number | null; out: string }>((resolve) => {
        const child = spawn(process.execPath, ['--require', 'tsx/cjs', cli, 'control_flow'], {
          cwd: packageRoot(), env: { ...process.env, TORCHGRAPH_MODELS_DIR: tmp }, stdio: ['ignore', 'pipe', 'pipe'],
        });
        let out = '';
        child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
        child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
        child.on('close', (code) => resolve({ code, out }));
      });
      const [a, b] = await Promise.all([run(), run()]);
      assert.equal(a.code, 0, a.out);
      assert.equal(b.code, 0, b.out);
      const lines = [a.out, b.out].map((o) => o.split('\n').find((l) => l.startsWith('control_flow:')) ?? o);
      assert.deepEqual(lines.map((l) => /exported in/.test(l)).sort(), [false, true], lines.join('\n'));
      const keys = fs.readdirSync(tmp);
      assert.equal(keys.length, 1, `left behind: ${keys.join(', ')}`);
      assert.deepEqual(fs.readdirSync(path.join(tmp, keys[0])), ['control_flow']);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});
