// The whole CLI in-process on any string (issue 14): --input, --seed, --device and --tolerance
// values never make it exit other than 0, 1 or 2, and bad usage is one line. Loads the addon
// (inspect and bench get as far as loading a file that is not a model).
import { strict as assert } from 'assert';
import fc from 'fast-check';
import { textish } from '../support/user-strings';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { main } from '../../lib/app/cli/main';
import type { CliIO } from '../../lib/app/cli/io';

describe('the whole CLI on any string', () => {
  let dir: string;
  let model: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tg-prop-'));
    // Exists, so validate gets past the model argument; never loaded, because --report names a
    // device and is refused right after the options and specs are parsed.
    model = path.join(dir, 'model.pt');
    fs.writeFileSync(model, 'not loaded');
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('exits 0, 1 or 2 with one line on stderr for any --input, --seed, --device and --tolerance', async () => {
    const reached = { report: 0, load: 0 };
    await fc.assert(fc.asyncProperty(textish, textish, textish, textish, async (input, seed, device, tol) => {
      let err = '';
      const io: CliIO = { stdout: () => {}, stderr: (s) => { err += s; }, stderrIsTTY: false, color: false };
      const code = await main(['validate', model, '--input', input, '--seed', seed, '--device', device, '--tolerance', tol, '--report', '/dev/null'], io);
      assert.ok(code === 0 || code === 1 || code === 2, `exit ${code}: ${err}`);
      assert.equal(err.split('\n').filter((l) => l.length > 0).length, 1, err);
      if (/--report "\/dev\/null"/.test(err)) reached.report++;
      for (const cmd of [['inspect', model, '--seed', seed], ['bench', model, '--seed', seed, '--repeat', tol, '--input', input, '--device', device]]) {
        err = '';
        const c = await main(cmd, io);
        // Only argument errors can happen here: a run would need a real model file.
        assert.ok(c === 2, `${cmd.join(' ')}: exit ${c}: ${err}`);
        if (/cannot load/.test(err)) reached.load++;
      }
    }), { numRuns: 200, examples: [['2x3', '7', 'cpu', '3'], ['1x768:float64', '0', 'cuda:0', '1e-3']] });
    // Some runs got past every parser (so the parsers were exercised on both sides).
    assert.ok(reached.report > 0 && reached.load > 0, JSON.stringify(reached));
  });
});

describe('CLI usage errors (issue 14, case 8)', () => {
  const run = async (argv: string[]) => {
    let err = '';
    const io: CliIO = { stdout: () => {}, stderr: (s) => { err += s; }, stderrIsTTY: false, color: false };
    return { code: await main(argv, io), err };
  };
  it('bench FILE without --input, --repeat 0, --seed abc and a seed past 2^32 are bad usage (exit 2)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tg-usage-'));
    try {
      const file = path.join(dir, 'm.pt');
      fs.writeFileSync(file, 'x');
      let r = await run(['bench', file]);
      assert.equal(r.code, 2);
      assert.match(r.err, /a model file needs --input SPEC/);
      r = await run(['bench', 'mha_demo', '--repeat', '0']);
      assert.equal(r.code, 2);
      assert.match(r.err, /repeat must be a positive integer/);
      for (const cmd of ['inspect', 'validate', 'bench']) {
        for (const seed of ['abc', '4294967301', '-1', '1.5']) {
          r = await run([cmd, 'mha_demo', '--seed', seed]);
          assert.equal(r.code, 2, `${cmd} --seed ${seed}`);
          assert.match(r.err, /seed must be an integer from 0 to 4294967295/);
        }
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
