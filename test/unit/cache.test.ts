// The shared cache: where it is, concurrent installs of the pinned torch (one pip run, nothing
// half-written where the resolver looks), prerequisites checked first, and `torchgraph cache`.
// pip is replaced by a fake python3 on PATH that writes a minimal torch layout slowly.
import { strict as assert } from 'assert';
import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { cacheCommand, listCache } from '../../lib/app/cli/cache-command';

const ROOT = path.resolve(__dirname, '..', '..');
const LIBTORCH = path.join(ROOT, 'scripts', 'libtorch.js');

/** A python3 whose `-m pip install --target DIR` makes a torch package after a second and counts its runs. */
function fakePython(dir: string): string {
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin, { recursive: true });
  fs.writeFileSync(path.join(bin, 'python3'), `#!/bin/sh
[ "$1" = "--version" ] && { echo "Python 3.11.0"; exit 0; }
[ "$3" = "--version" ] && { echo "pip 24"; exit 0; }
while [ $# -gt 0 ]; do [ "$1" = "--target" ] && T="$2"; shift; done
echo run >> "${dir}/pip-runs"
sleep 1
mkdir -p "$T/torch/share/cmake/Torch" "$T/torch/include/torch" "$T/torch/lib"
touch "$T/torch/share/cmake/Torch/TorchConfig.cmake"
echo "__version__ = '2.13.0+cpu'" > "$T/torch/version.py"
`, { mode: 0o755 });
  return bin;
}

function install(cache: string, bin: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['-e', `require(${JSON.stringify(LIBTORCH)}).installPinned().then((r) => console.log(r.root), (e) => { console.error(e.message); process.exit(1); })`],
      { env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, TORCHGRAPH_CACHE: cache, TORCHGRAPH_PYTHON: '', TORCHGRAPH_LIBTORCH: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    child.on('close', (code) => resolve({ code, out }));
  });
}

describe('shared cache', function () {
  this.timeout(60_000);
  let tmp = '';
  beforeEach(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tg-cache-')); });
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('defaults: TORCHGRAPH_CACHE, else a checkout keeps .torchgraph/, and a package uses XDG_CACHE_HOME or ~/.cache', () => {
    const probe = (env: NodeJS.ProcessEnv, script = LIBTORCH) => spawnSync(process.execPath, ['-e', `console.log(require(${JSON.stringify(script)}).cacheDir())`],
      { env: { ...process.env, TORCHGRAPH_CACHE: '', ...env }, encoding: 'utf8' }).stdout.trim();
    assert.equal(probe({ TORCHGRAPH_CACHE: path.join(tmp, 'c') }), path.join(tmp, 'c'));
    assert.equal(probe({}), path.join(ROOT, '.torchgraph'));
    // An installed package: the resolver outside a git checkout.
    const pkg = path.join(tmp, 'pkg', 'scripts');
    fs.mkdirSync(pkg, { recursive: true });
    fs.copyFileSync(LIBTORCH, path.join(pkg, 'libtorch.js'));
    assert.equal(probe({ XDG_CACHE_HOME: path.join(tmp, 'xdg') }, path.join(pkg, 'libtorch.js')), path.join(tmp, 'xdg', 'torchgraph'));
    assert.equal(probe({ XDG_CACHE_HOME: '', HOME: path.join(tmp, 'home') }, path.join(pkg, 'libtorch.js')), path.join(tmp, 'home', '.cache', 'torchgraph'));
  });

  it('two concurrent installs run pip once and both find the same complete torch', async () => {
    const bin = fakePython(tmp);
    const cache = path.join(tmp, 'cache');
    const [a, b] = await Promise.all([install(cache, bin), install(cache, bin)]);
    assert.equal(a.code, 0, a.out);
    assert.equal(b.code, 0, b.out);
    assert.equal(fs.readFileSync(path.join(tmp, 'pip-runs'), 'utf8').trim().split('\n').length, 1);
    const site = path.join(cache, 'torch', '2.13.0-cpu');
    assert.equal(a.out.trim(), fs.realpathSync(path.join(site, 'torch')));
    assert.deepEqual(fs.readdirSync(path.join(cache, 'torch')), ['2.13.0-cpu'], 'no lock or scratch folder left behind');
  });

  it('a failed pip leaves nothing where the resolver looks', async () => {
    const bin = path.join(tmp, 'bin');
    fs.mkdirSync(bin);
    fs.writeFileSync(path.join(bin, 'python3'), '#!/bin/sh\necho "ERROR: No matching distribution found for torch==2.13.0" >&2\nexit 1\n', { mode: 0o755 });
    const r = await install(path.join(tmp, 'cache'), bin);
    assert.equal(r.code, 1);
    assert.match(r.out, /pip could not install torch==2\.13\.0[\s\S]*No matching distribution[\s\S]*Fix:/);
    assert.deepEqual(fs.readdirSync(path.join(tmp, 'cache', 'torch')), []);
  });

  it('prerequisites are named with their fix before anything is downloaded', () => {
    const r = spawnSync(process.execPath, ['-e', `console.log(JSON.stringify(require(${JSON.stringify(LIBTORCH)}).missingPrerequisites({ needPip: true, needCompiler: true })))`],
      { env: { ...process.env, PATH: path.join(tmp, 'nothing'), TORCHGRAPH_PYTHON: '', CXX: '' }, encoding: 'utf8' });
    const missing = JSON.parse(r.stdout) as { what: string; fix: string }[];
    assert.deepEqual(missing.map((m) => m.what.split(' ')[0]), ['python3', 'cmake', 'C++']);
    for (const m of missing) assert.match(m.fix, /install/);
  });

  it('torchgraph cache lists entries with sizes and --clean models removes only models', async () => {
    const cache = path.join(tmp, 'cache');
    fs.mkdirSync(path.join(cache, 'models', 'abcd', 'mha_demo'), { recursive: true });
    fs.writeFileSync(path.join(cache, 'models', 'abcd', 'mha_demo', 'manifest.json'), JSON.stringify({ name: 'mha_demo' }));
    fs.writeFileSync(path.join(cache, 'models', 'abcd', 'mha_demo', 'traced.pt'), Buffer.alloc(3 << 20));
    fs.mkdirSync(path.join(cache, 'torch', '2.13.0-cpu', 'torch'), { recursive: true });
    fs.writeFileSync(path.join(cache, 'torch', '2.13.0-cpu', 'torch', 'lib.so'), Buffer.alloc(1 << 20));
    const entries = listCache(cache);
    assert.deepEqual(entries.map((e) => [e.kind, e.label, e.bytes > 0]).sort(), [['model', 'mha_demo', true], ['torch', 'torch 2.13.0-cpu', true]]);
    const saved = process.env.TORCHGRAPH_CACHE;
    process.env.TORCHGRAPH_CACHE = cache;
    let out = '';
    const io = { stdout: (s: string) => { out += s; }, stderr: (s: string) => { out += s; }, stderrIsTTY: false, color: false };
    try {
      assert.equal(await cacheCommand({}, io), 0);
      assert.match(out, /model\s+mha_demo\s+3\.0 MiB/);
      // A name every object has is no kind (a plain lookup found a function there).
      for (const what of ['toString', 'constructor', '__proto__']) {
        await assert.rejects(cacheCommand({ clean: what }, io), new RegExp(`--clean ${what}: give models, torch or all`));
      }
      assert.equal(await cacheCommand({ clean: 'models' }, io), 0);
    } finally {
      if (saved === undefined) delete process.env.TORCHGRAPH_CACHE; else process.env.TORCHGRAPH_CACHE = saved;
    }
    assert.match(out, /removed models .* freed 3\.0 MiB/);
    assert.deepEqual(fs.readdirSync(path.join(cache, 'models')), []);
    assert.ok(fs.existsSync(path.join(cache, 'torch', '2.13.0-cpu', 'torch', 'lib.so')));
  });
});
