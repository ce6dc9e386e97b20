// What `npm pack` would publish: the runtime, the build files a source build needs, and no
// tests, CI or docs images. Lists with --dry-run (nothing written); needs dist/lib (npm run build:ts).
import { strict as assert } from 'assert';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

const ROOT = path.resolve(__dirname, '..', '..');

function packedFiles(): string[] {
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const out = execFileSync(npm, ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return (JSON.parse(out) as { files: { path: string }[] }[])[0].files.map((f) => f.path);
}

describe('package contents (npm pack --dry-run)', () => {
  let files: string[] = [];
  before(function () {
    this.timeout(60_000);
    assert.ok(fs.existsSync(path.join(ROOT, 'dist', 'lib', 'index.js')), 'dist/lib is not built: run `npm run build:ts` first');
    files = packedFiles();
  });

  it('holds the runtime: compiled library, CLI, types, resolver, setup, exporter', () => {
    for (const f of ['package.json', 'README.md', 'ARCHITECTURE.md', 'dist/lib/index.js', 'dist/lib/index.d.ts',
      'dist/lib/app/cli/main.js', 'scripts/libtorch.js', 'scripts/setup.js', 'scripts/export_models.py', 'scripts/vit.py', 'scripts/export_model.py', 'scripts/builtin-models.json', 'scripts/anchors.py']) {
      assert.ok(files.includes(f), `${f} is not in the package`);
    }
  });

  it('holds what a source build needs: native sources, CMakeLists.txt, binding.gyp', () => {
    for (const f of ['CMakeLists.txt', 'binding.gyp', 'native/addon.cc', 'native/common.h']) assert.ok(files.includes(f), `${f} is not in the package`);
  });

  it('holds the prebuilt addons when they were made (npm run prebuild)', function () {
    const dir = path.join(ROOT, 'prebuilds');
    if (!fs.existsSync(dir)) {
      if (process.env.TORCHGRAPH_PREBUILD_REQUIRED) assert.fail('no prebuilds/: `npm run prebuild` did not run');
      this.skip();
    }
    assert.ok(files.some((f) => /^prebuilds\/[^/]+\/[^/]+\.node$/.test(f)), 'no prebuilds/<platform>/*.node in the package');
  });

  it('holds no tests, CI, TypeScript sources, source maps, caches or docs images', () => {
    const bad = files.filter((f) => /^(test|dist\/test|dist\/scripts|\.ci|lib|docs|\.torchgraph|build|node_modules)\//.test(f) ||
      /\.(map|png|pt|whl|tgz)$/.test(f) || /\.test\.[jt]s$/.test(f));
    assert.deepEqual(bad, []);
  });
});
