// The ```js example blocks of README.md and docs/*.md, run as a user would (require or import
// 'torchgraph', model.pt = the built-in mha_demo) against this checkout's compiled library,
// printing what the page says. The folder is an `npm init -y` project (no "type": "module"), so a
// `.js` file is CommonJS there: ES module examples run as `.mjs` and again rewritten with
// `require` as `.js`; CommonJS examples run as `.js`. The install test runs the README's again
// from the packed package.
import { strict as assert } from 'assert';
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ensureModel } from '../../lib/app/models';
import { asCommonJS, docExamples, normalizeOutput, type ReadmeExample } from '../support/readme';

const ROOT = path.resolve(__dirname, '..', '..');

describe('README and docs examples', function () {
  this.timeout(300_000);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tg-readme-'));
  before(async () => {
    // The examples import the package, i.e. dist/lib: compile it from these sources first.
    execFileSync(path.join(ROOT, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.json'], { cwd: ROOT, stdio: 'inherit' });
    fs.writeFileSync(path.join(tmp, 'package.json'), JSON.stringify({ name: 'readme-examples', version: '1.0.0' }));
    fs.mkdirSync(path.join(tmp, 'node_modules'));
    fs.symlinkSync(ROOT, path.join(tmp, 'node_modules', 'torchgraph'));
    fs.copyFileSync((await ensureModel('mha_demo')).variants.traced!, path.join(tmp, 'model.pt'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  function run(ex: ReadmeExample, name: string, code: string): void {
    const file = path.join(tmp, name);
    fs.writeFileSync(file, code);
    const r = spawnSync(process.execPath, [file], { cwd: tmp, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(normalizeOutput(r.stdout), normalizeOutput(ex.output), `${ex.file}:${ex.line} prints something else`);
  }

  const examples = docExamples();
  it('there are examples to run', () => {
    assert.ok(examples.filter((e) => e.file === 'README.md').length >= 2, 'the README has fewer than 2 js example blocks');
    assert.ok(examples.some((e) => e.module === 'cjs'), 'no CommonJS example');
    assert.ok(examples.length >= 5, `${examples.length} js example blocks`);
  });
  for (const ex of examples) {
    const base = `${ex.file.replace(/[/.]/g, '-')}-${ex.line}`;
    if (ex.module === 'esm') {
      it(`${ex.file}:${ex.line} prints what the page says (ES module, .mjs)`, () => run(ex, `${base}.mjs`, ex.code));
      it(`${ex.file}:${ex.line} prints the same with require (CommonJS, .js)`, () => run(ex, `${base}-cjs.js`, asCommonJS(ex.code)));
    } else {
      it(`${ex.file}:${ex.line} prints what the page says (CommonJS, .js)`, () => run(ex, `${base}.js`, ex.code));
    }
  }
});
