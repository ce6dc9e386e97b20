// The README's ```js example blocks, run as a user would (import 'torchgraph', model.pt = the
// built-in mha_demo) against this checkout's compiled library, printing what the README says.
// The install test runs them again from the packed package.
import { strict as assert } from 'assert';
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ensureModel } from '../../lib/app/models';
import { normalizeOutput, readmeExamples } from '../support/readme';

const ROOT = path.resolve(__dirname, '..', '..');

describe('README examples', function () {
  this.timeout(300_000);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tg-readme-'));
  before(async () => {
    // The examples import the package, i.e. dist/lib: compile it from these sources first.
    execFileSync(path.join(ROOT, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.json'], { cwd: ROOT, stdio: 'inherit' });
    fs.mkdirSync(path.join(tmp, 'node_modules'));
    fs.symlinkSync(ROOT, path.join(tmp, 'node_modules', 'torchgraph'));
    fs.copyFileSync((await ensureModel('mha_demo')).variants.traced!, path.join(tmp, 'model.pt'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  const examples = readmeExamples();
  it('there are examples to run', () => assert.ok(examples.length >= 3, `${examples.length} js example blocks`));
  for (const ex of examples) {
    it(`README.md:${ex.line} prints what the README says`, () => {
      const file = path.join(tmp, `example-${ex.line}.mjs`);
      fs.writeFileSync(file, ex.code);
      const r = spawnSync(process.execPath, [file], { cwd: tmp, encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(normalizeOutput(r.stdout), normalizeOutput(ex.output));
    });
  }
});
