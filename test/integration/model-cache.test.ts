// A damaged entry in the model cache is found and exported again (issue 14, case 8). Works on a
// copy of the mha_demo entry in a temporary TORCHGRAPH_MODELS_DIR.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ensureModel, modelsDir } from '../../lib/app/models';
import { damagedFixtureFiles } from '../../lib/app/cache-check';
import { Module } from '../../lib/torchscript/module';

describe('model cache entries are checked (issue 14)', function () {
  this.timeout(600_000);
  let tmp: string;
  let saved: string | undefined;
  before(async () => {
    const real = await ensureModel('mha_demo');
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tg-cache-'));
    fs.cpSync(real.dir, path.join(tmp, real.key, 'mha_demo'), { recursive: true });
    saved = process.env.TORCHGRAPH_MODELS_DIR;
    process.env.TORCHGRAPH_MODELS_DIR = tmp;
    assert.equal(modelsDir(), tmp);
  });
  after(() => {
    if (saved === undefined) delete process.env.TORCHGRAPH_MODELS_DIR;
    else process.env.TORCHGRAPH_MODELS_DIR = saved;
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('a whole entry is a cache hit and is not exported again', async () => {
    const logs: string[] = [];
    const fx = await ensureModel('mha_demo', { log: (l) => logs.push(l) });
    assert.equal(fx.cacheHit, true);
    assert.deepEqual(damagedFixtureFiles(fx), []);
    assert.deepEqual(logs, []);
  });

  for (const [what, file] of [['a truncated TorchScript file', 'traced.pt'], ['a truncated .npy input', 'input_0.npy']] as const) {
    it(`${what} is found, said, and exported again`, async () => {
      const before = await ensureModel('mha_demo');
      const f = path.join(before.dir, file);
      fs.truncateSync(f, Math.floor(fs.statSync(f).size / 2));
      assert.ok(damagedFixtureFiles(before).some((d) => d.startsWith(f)), 'the damage is seen');
      const logs: string[] = [];
      const fx = await ensureModel('mha_demo', { log: (l) => logs.push(l) });
      assert.ok(logs.some((l) => /the cached mha_demo is damaged .*exporting it again/.test(l)), logs.join('\n'));
      assert.equal(fx.cacheHit, false);
      assert.deepEqual(damagedFixtureFiles(fx), []);
      const m = await Module.load(fx.variants.traced!);
      m.dispose();
      assert.deepEqual(fs.readdirSync(path.dirname(fx.dir)).filter((n) => n.includes('damaged')), [], 'nothing left aside');
    });
  }
});
