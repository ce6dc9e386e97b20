// The install bar: pack torchgraph (with its prebuilt addon), install the tarball into fresh
// projects whose PATH holds node, npm, python3 and sh only (no cmake, no compiler), with the
// shared cache in a temp folder, then run the README's example and `npx torchgraph validate
// mha_demo` there. The first project installs torch into the empty cache (pip); the second
// installs from the warm cache and must take under 20 s. Needs `npm run prebuild` first.
import { strict as assert } from 'assert';
import { execFileSync, spawnSync, type SpawnSyncReturns } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { asCommonJS, normalizeOutput, readmeExamples } from '../support/readme';

const ROOT = path.resolve(__dirname, '..', '..');
const WARM_LIMIT_S = 20;

/** The non-empty lines of stderr: exactly one. */
function oneLine(err: string): string {
  const lines = err.split('\n').filter(Boolean);
  assert.equal(lines.length, 1, err);
  return lines[0];
}

function which(cmd: string): string | null {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

/** A folder of symlinks to the few programs an install needs, and nothing that compiles. */
function barePath(dir: string): string {
  fs.mkdirSync(dir, { recursive: true });
  const python = execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim();
  const links: Record<string, string | null> = { node: process.execPath, npm: which('npm'), npx: which('npx'), python3: python, sh: which('sh') };
  for (const [name, target] of Object.entries(links)) {
    assert.ok(target, `${name} not found`);
    fs.symlinkSync(fs.realpathSync(target), path.join(dir, name));
  }
  return dir;
}

describe('install: a packed torchgraph in a fresh project, no compiler on PATH', function () {
  this.timeout(900_000);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tg-install-'));
  const cache = path.join(tmp, 'cache');
  let tarball = '';
  let env: NodeJS.ProcessEnv = {};
  const timings: Record<string, number> = {};

  function sh(cwd: string, cmd: string, args: string[], what: string): SpawnSyncReturns<string> {
    const t0 = Date.now();
    const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout: 600_000, maxBuffer: 64 << 20 });
    timings[what] = (Date.now() - t0) / 1000;
    assert.equal(r.status, 0, `${what} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
    return r;
  }

  function newProject(name: string): string {
    const dir = path.join(tmp, name);
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true, type: 'module' }));
    return dir;
  }

  before(function () {
    const prebuilds = path.join(ROOT, 'prebuilds', `${process.platform}-${process.arch}`);
    if (!fs.existsSync(prebuilds)) {
      if (process.env.TORCHGRAPH_PREBUILD_REQUIRED) assert.fail('no prebuild in prebuilds/: `npm run prebuild` did not run');
      this.skip();
    }
    // prepack compiles dist/ first, so the tarball holds this checkout's code.
    const out = execFileSync('npm', ['pack', '--json', '--pack-destination', tmp], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const info = (JSON.parse(out.slice(out.indexOf('['))) as { filename: string; size: number; unpackedSize: number }[])[0];
    tarball = path.join(tmp, info.filename);
    timings.packageKiB = Math.round(info.size / 1024);
    timings.unpackedKiB = Math.round(info.unpackedSize / 1024);
    const bin = barePath(path.join(tmp, 'bin'));
    // Only the npm cache is shared with the user (the registry's packages); torchgraph's cache is empty.
    env = { HOME: process.env.HOME, PATH: bin, TORCHGRAPH_CACHE: cache, NO_COLOR: '1', npm_config_cache: process.env.npm_config_cache ?? path.join(os.homedir(), '.npm'), npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' };
  });

  after(() => {
    if (Object.keys(timings).length) console.log(`      install numbers: ${JSON.stringify(timings)}`);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('the bare PATH has no cmake and no compiler', () => {
    for (const c of ['cmake', 'c++', 'g++', 'gcc', 'cc', 'clang++', 'make']) {
      const r = spawnSync('sh', ['-c', `command -v ${c}`], { env, encoding: 'utf8' });
      assert.notEqual(r.status, 0, `${c} is reachable: ${r.stdout}`);
    }
  });

  let p1 = '';
  it('installs into a first project with a cold cache (pip puts the pinned torch into the cache)', () => {
    p1 = newProject('first');
    sh(p1, 'npm', ['install', '--no-package-lock', tarball], 'coldInstallS');
    assert.ok(fs.existsSync(path.join(cache, 'torch', '2.13.0-cpu', 'torch', 'lib', 'libtorch_cpu.so')), 'torch is not in the shared cache');
    const pkg = path.join(p1, 'node_modules', 'torchgraph');
    assert.ok(!fs.existsSync(path.join(pkg, 'build')), 'the addon was built from source: the prebuild was not used');
    for (const d of ['test', 'dist/test', '.ci', 'docs', '.torchgraph']) assert.ok(!fs.existsSync(path.join(pkg, d)), `the package holds ${d}`);
    // The prebuilt addon was used: the source build's tools (optional peers) and their dependencies are not installed.
    for (const d of ['cmake-js', 'node-addon-api', 'yargs', 'tar']) assert.ok(!fs.existsSync(path.join(p1, 'node_modules', d)), `node_modules holds ${d}`);
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(pkg, '.setup-result.json'), 'utf8')).ok, true);
  });

  it('npx torchgraph validate mha_demo passes there, and says nothing about setup (it ran)', () => {
    const r = sh(p1, 'npx', ['torchgraph', 'validate', 'mha_demo'], 'validateS');
    assert.match(r.stdout, /Result: PASSED/);
    assert.doesNotMatch(r.stderr, /setup/i);
  });

  it("the README's examples print what the README says", () => {
    const model = fs.readdirSync(path.join(cache, 'models')).map((k) => path.join(cache, 'models', k, 'mha_demo', 'traced.pt')).find((f) => fs.existsSync(f));
    assert.ok(model, 'mha_demo was not exported into the shared cache');
    fs.copyFileSync(model, path.join(p1, 'model.pt'));
    const examples = readmeExamples();
    assert.ok(examples.length > 0, 'no ```js example blocks in README.md');
    // This project says "type": "module": CommonJS runs as .cjs here, ES modules as .mjs.
    const runs = examples.flatMap((ex) => ex.module === 'cjs'
      ? [{ ex, name: `readme-${ex.line}.cjs`, code: ex.code }]
      : [{ ex, name: `readme-${ex.line}.mjs`, code: ex.code }, { ex, name: `readme-${ex.line}-require.cjs`, code: asCommonJS(ex.code) }]);
    for (const { ex, name, code } of runs) {
      fs.writeFileSync(path.join(p1, name), code);
      const r = sh(p1, 'node', [name], `readme${ex.line}${path.extname(name)}S`);
      assert.equal(normalizeOutput(r.stdout), normalizeOutput(ex.output), `README.md:${ex.line} (${name}) prints something else`);
    }
  });

  it('with install scripts skipped, the first use says in one line to run npx torchgraph setup, which finishes it', () => {
    const p3 = newProject('no-scripts');
    sh(p3, 'npm', ['install', '--no-package-lock', '--ignore-scripts', tarball], 'noScriptsInstallS');
    // A machine whose cache is empty: nothing set up yet.
    const empty = { ...env, TORCHGRAPH_CACHE: path.join(tmp, 'empty-cache') };
    const r = spawnSync('npx', ['torchgraph', 'validate', 'mha_demo'], { cwd: p3, env: empty, encoding: 'utf8' });
    assert.equal(r.status, 3, r.stderr);
    const lines = r.stderr.split('\n').filter(Boolean);
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], /^torchgraph: setup has not run: npm skipped torchgraph's install script .*[Rr]un `npx torchgraph setup`/);
    // The library says the same at its first call that needs libtorch (importing it needs none).
    const lib = spawnSync('node', ['-e', "const t = require('torchgraph'); console.log('imported'); t.runtimeInfo()"],
      { cwd: p3, env: empty, encoding: 'utf8' });
    assert.notEqual(lib.status, 0);
    assert.equal(lib.stdout.trim(), 'imported');
    assert.match(lib.stderr, /setup has not run: npm skipped torchgraph's install script .*Fix: run `npx torchgraph setup`/);
    // A setup that fails (here: a cache under a file) is what the next use names, with its reason.
    fs.writeFileSync(path.join(tmp, 'a-file'), '');
    const broken = { ...env, TORCHGRAPH_CACHE: path.join(tmp, 'a-file', 'cache') };
    assert.notEqual(spawnSync('npx', ['torchgraph', 'setup'], { cwd: p3, env: broken, encoding: 'utf8' }).status, 0);
    const failed = spawnSync('npx', ['torchgraph', 'inspect', 'mha_demo'], { cwd: p3, env: broken, encoding: 'utf8' });
    assert.equal(failed.status, 3, failed.stderr);
    assert.match(oneLine(failed.stderr), /^torchgraph: setup failed: .*a-file.*then run `npx torchgraph setup`/);
    // TORCHGRAPH_AUTO_SETUP=1: the first use runs setup itself (pip into the empty cache), then the command.
    const autoEnv = { ...env, TORCHGRAPH_CACHE: path.join(tmp, 'auto-cache'), TORCHGRAPH_AUTO_SETUP: '1' };
    const t0 = Date.now();
    const auto = spawnSync('npx', ['torchgraph', 'validate', 'mha_demo'], { cwd: p3, env: autoEnv, encoding: 'utf8', timeout: 600_000 });
    timings.autoSetupValidateS = (Date.now() - t0) / 1000;
    assert.equal(auto.status, 0, auto.stderr);
    assert.match(auto.stderr, /^torchgraph: TORCHGRAPH_AUTO_SETUP=1: running `npx torchgraph setup` first$/m);
    assert.match(auto.stderr, /^torchgraph: installed torch 2\.13\.0/m);
    assert.match(auto.stdout, /Result: PASSED/);
    fs.rmSync(path.join(tmp, 'auto-cache'), { recursive: true, force: true });
    // setup with the shared cache (torch already there): one line per step, then it works.
    const s = sh(p3, 'npx', ['torchgraph', 'setup'], 'setupWarmS');
    assert.match(s.stderr, /^torchgraph: using the prebuilt addon prebuilds\/linux-x64\/torchgraph\.node$/m);
    assert.match(s.stderr, /^torchgraph: the addon loads: torch 2\.13\.0 .*\(\d+\.\d s\)$/m);
    assert.ok(!s.stderr.includes('\r') && !s.stderr.includes('\x1b'), 'no terminal control characters');
  });

  it(`a second project installs from the warm cache in under ${WARM_LIMIT_S} s`, () => {
    const p2 = newProject('second');
    sh(p2, 'npm', ['install', '--no-package-lock', tarball], 'warmInstallS');
    const r = sh(p2, 'node', ['-e', "import('torchgraph').then((t) => console.log(t.runtimeInfo().torchVersion))"], 'firstLoadS');
    assert.equal(r.stdout.trim(), '2.13.0');
    assert.ok(timings.warmInstallS < WARM_LIMIT_S, `warm install took ${timings.warmInstallS} s`);
    timings.projectMiB = Math.round(Number(execFileSync('du', ['-sk', path.join(p2, 'node_modules')], { encoding: 'utf8' }).split('\t')[0]) / 1024);
    timings.cacheMiB = Math.round(Number(execFileSync('du', ['-sk', cache], { encoding: 'utf8' }).split('\t')[0]) / 1024);
  });
});
