// The layer rules of ARCHITECTURE.md, as dependency-cruiser applies them (.dependency-cruiser.cjs):
// the tree passes, and a deliberate upward import or a cycle in a scratch tree fails.
import { strict as assert } from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const ROOT = path.resolve(__dirname, '..', '..');
const DEPCRUISE = path.join(ROOT, 'node_modules', '.bin', 'depcruise');
const CONFIG = path.join(ROOT, '.dependency-cruiser.cjs');

function cruise(cwd: string, ...dirs: string[]): { code: number | null; out: string } {
  const r = spawnSync(DEPCRUISE, [...dirs, '--config', CONFIG, '--output-type', 'err'], { cwd, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

/** A scratch tree holding `files` (path -> source) and the project's tsconfig. */
function scratch(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tg-layers-'));
  fs.copyFileSync(path.join(ROOT, 'tsconfig.json'), path.join(dir, 'tsconfig.json'));
  for (const [f, src] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    fs.writeFileSync(path.join(dir, f), src);
  }
  return dir;
}

describe('layers: dependency direction and cycles (dependency-cruiser)', function () {
  this.timeout(120_000);
  const dirs: string[] = [];
  after(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

  it('lib/, test/ and scripts/ follow the rules', () => {
    const r = cruise(ROOT, 'lib', 'test', 'scripts');
    assert.equal(r.code, 0, r.out);
  });

  it('an upward import (core -> app) fails, naming the rule', () => {
    const dir = scratch({
      'lib/app/bench.ts': 'export const suite = 1;\n',
      'lib/core/graph.ts': "import { suite } from '../app/bench';\nexport const g = suite;\n",
    });
    dirs.push(dir);
    const r = cruise(dir, 'lib');
    assert.notEqual(r.code, 0, r.out);
    assert.match(r.out, /core-imports-upward/);
    assert.match(r.out, /lib\/core\/graph\.ts → lib\/app\/bench\.ts/);
  });

  it('a cycle of run-time imports fails; type-only references do not count', () => {
    const dir = scratch({
      'lib/fusion/a.ts': "import { b } from './b';\nexport const a = () => b;\n",
      'lib/fusion/b.ts': "import { a } from './a';\nexport const b = () => a;\n",
      'lib/core/x.ts': "import type { Y } from './y';\nexport interface X { y?: Y }\nexport const x = 1;\n",
      'lib/core/y.ts': "import { x } from './x';\nexport interface Y { n: number }\nexport const y = x;\n",
    });
    dirs.push(dir);
    const r = cruise(dir, 'lib');
    assert.notEqual(r.code, 0, r.out);
    assert.match(r.out, /no-circular/);
    assert.match(r.out, /lib\/fusion\/a\.ts/);
    assert.doesNotMatch(r.out, /lib\/core\/x\.ts/);
  });
});

describe('layers: lib/ reaches scripts/ only through lib/torchscript/package-scripts.ts (eslint)', function () {
  this.timeout(120_000);
  const src = "import * as path from 'path';\nexport const f = path.join(__dirname, '..', 'scripts', 'libtorch.js');\n";

  async function ruleIds(filePath: string): Promise<string[]> {
    const { ESLint } = await import('eslint');
    const [result] = await new ESLint({ cwd: ROOT }).lintText(src, { filePath: path.join(ROOT, filePath) });
    return result.messages.map((m) => `${m.ruleId}: ${m.message}`);
  }

  it('a path built to scripts/ in a lib/ file fails lint, naming the module to use', async () => {
    const app = await ruleIds('lib/app/scratch.ts');
    assert.ok(app.some((m) => /^no-restricted-syntax: .*package-scripts\.ts/.test(m)), app.join('\n'));
    // fusion/ and analysis/ carry a rule of their own (no literal .inputs[k]); this one holds there too.
    const fusion = await ruleIds('lib/fusion/scratch.ts');
    assert.ok(fusion.some((m) => /^no-restricted-syntax: .*package-scripts\.ts/.test(m)), fusion.join('\n'));
  });

  it('the module that declares the scripts may build their paths', async () => {
    assert.deepEqual(await ruleIds('lib/torchscript/package-scripts.ts'), []);
  });
});
