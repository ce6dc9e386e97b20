#!/usr/bin/env node
'use strict';

/* global setTimeout */
// One resolver for libtorch, shared by setup, CMakeLists.txt, binding.gyp, the model
// exporter and the runtime loader, so no second list of paths is kept by hand.
//
// Order: TORCHGRAPH_LIBTORCH (an unpacked libtorch, a Python torch package, or a
// site-packages holding one) -> TORCHGRAPH_PYTHON (a Python whose torch we use) ->
// the pinned CPU wheel in the per-user cache (cacheDir(): installed once per machine and
// version by `torchgraph setup`, shared by every project).
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync, spawn } = require('child_process');

const ROOT = path.resolve(__dirname, '..');
const PINNED_VERSION = '2.13.0';
const PINNED = `torch==${PINNED_VERSION}`;

class ResolveError extends Error {}

/** A git checkout of torchgraph (development), not an installed package. */
function isDevCheckout() {
  return fs.existsSync(path.join(ROOT, '.git'));
}

/** The cache: TORCHGRAPH_CACHE, else for a development checkout its in-repo .torchgraph/ (as
 * before the shared cache: checkouts keep their torch and models, and tests see one place),
 * else $XDG_CACHE_HOME/torchgraph, else ~/.cache/torchgraph: one per user, for every project. */
function cacheDir() {
  if (process.env.TORCHGRAPH_CACHE) return path.resolve(process.env.TORCHGRAPH_CACHE);
  if (isDevCheckout()) return path.join(ROOT, '.torchgraph');
  const base = process.env.XDG_CACHE_HOME ? path.resolve(process.env.XDG_CACHE_HOME) : path.join(os.homedir(), '.cache');
  return path.join(base, 'torchgraph');
}

/** The pip --target folder of the pinned wheel: one per torch version, shared by all projects. */
function pinnedSite(cache = cacheDir()) {
  return path.join(cache, 'torch', `${PINNED_VERSION}-cpu`);
}

function isTorchRoot(dir) {
  return fs.existsSync(path.join(dir, 'share', 'cmake', 'Torch', 'TorchConfig.cmake')) &&
    fs.existsSync(path.join(dir, 'include', 'torch'));
}

function readVersion(root) {
  const py = path.join(root, 'version.py');
  if (fs.existsSync(py)) {
    const m = /__version__\s*=\s*['"]([^'"]+)['"]/.exec(fs.readFileSync(py, 'utf8'));
    if (m) return m[1];
  }
  const bv = path.join(root, 'build-version');
  if (fs.existsSync(bv)) return fs.readFileSync(bv, 'utf8').trim();
  return 'unknown';
}

function describe(root, source, python) {
  // Real paths: build files bake them into RPATH, so no symlinked or scratch path may leak in.
  root = fs.realpathSync(root);
  if (python && python.pythonPath) python = { ...python, pythonPath: fs.realpathSync(python.pythonPath) };
  const libDir = path.join(root, 'lib');
  return {
    source,
    root,
    version: readVersion(root),
    cmakeDir: path.join(root, 'share', 'cmake', 'Torch'),
    includeDirs: [path.join(root, 'include'), path.join(root, 'include', 'torch', 'csrc', 'api', 'include')],
    libDir,
    cuda: fs.existsSync(path.join(libDir, 'libtorch_cuda.so')),
    // The Python that can import this torch (null for a bare libtorch): the model exporter needs it.
    python,
  };
}

function fromEnvPath(p) {
  const dir = path.resolve(p);
  if (!fs.existsSync(dir)) throw new ResolveError(`TORCHGRAPH_LIBTORCH=${p} does not exist`);
  for (const cand of [dir, path.join(dir, 'torch')]) {
    if (isTorchRoot(cand)) {
      // A Python torch package sits in a site-packages folder; an unpacked libtorch does not.
      const site = path.dirname(cand);
      const isPython = fs.existsSync(path.join(cand, '__init__.py'));
      return describe(cand, 'TORCHGRAPH_LIBTORCH', isPython ? { exe: pythonExe(), pythonPath: site } : null);
    }
  }
  throw new ResolveError(`TORCHGRAPH_LIBTORCH=${p} is neither an unpacked libtorch nor a Python torch package ` +
    '(expected share/cmake/Torch/TorchConfig.cmake and include/torch under it)');
}

function pythonExe() {
  return process.env.TORCHGRAPH_PYTHON || 'python3';
}

function fromPython(exe, pythonPath) {
  let out;
  try {
    out = execFileSync(exe, ['-c', 'import os, torch; print(os.path.dirname(torch.__file__))'], {
      encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'],
      env: pythonPath ? { ...process.env, PYTHONPATH: pythonPath } : process.env,
    });
  } catch (e) {
    return null;
  }
  const root = out.trim().split('\n').pop();
  if (!isTorchRoot(root)) return null;
  return describe(root, `TORCHGRAPH_PYTHON=${exe}`,
    { exe, pythonPath: pythonPath || path.dirname(root) });
}

/** The pinned wheel in the cache (or, in a development checkout's in-repo cache, its older
 * python/ folder), or null. Only file checks: cheap enough for every load. */
function fromCache(cache = cacheDir()) {
  for (const site of [pinnedSite(cache), path.join(cache, 'python')]) {
    const root = path.join(site, 'torch');
    if (isTorchRoot(root) && readVersion(root).startsWith(PINNED_VERSION)) {
      return describe(root, 'pinned wheel in the torchgraph cache', { exe: pythonExe(), pythonPath: site });
    }
  }
  return null;
}

/** Resolve without installing. Returns null when nothing is found. */
function resolve() {
  if (process.env.TORCHGRAPH_LIBTORCH) return fromEnvPath(process.env.TORCHGRAPH_LIBTORCH);
  if (process.env.TORCHGRAPH_PYTHON) {
    const r = fromPython(process.env.TORCHGRAPH_PYTHON);
    if (!r) throw new ResolveError(`TORCHGRAPH_PYTHON=${process.env.TORCHGRAPH_PYTHON} cannot import torch ` +
      `(install it there with: ${process.env.TORCHGRAPH_PYTHON} -m pip install ${PINNED})`);
    return r;
  }
  return fromCache();
}

function runs(cmd, args) {
  try {
    execFileSync(cmd, args, { stdio: 'ignore', timeout: 60_000 });
    return true;
  } catch {
    return false;
  }
}

/** What installing needs, checked before anything is downloaded: [{ what, fix }] for each one
 * missing. Python and pip only when the pinned wheel must be installed; cmake and a C++
 * compiler only for a source build. */
function missingPrerequisites({ needPip, needCompiler }) {
  const missing = [];
  if (needPip) {
    const py = pythonExe();
    if (!runs(py, ['--version'])) {
      missing.push({ what: `${py} not found`, fix: 'install Python 3 (e.g. `apt install python3 python3-pip`), or set TORCHGRAPH_LIBTORCH to an unpacked libtorch' });
    } else if (!runs(py, ['-m', 'pip', '--version'])) {
      missing.push({ what: `pip not available for ${py}`, fix: `install it (\`${py} -m ensurepip --user\` or \`apt install python3-pip\`), or set TORCHGRAPH_LIBTORCH to an unpacked libtorch` });
    }
  }
  if (needCompiler) {
    const tools = sourceBuildTools();
    if (tools.missing.length) {
      missing.push({
        what: `${tools.missing.join(' and ')} not installed (needed to build the addon from source; installs that use the prebuilt addon do without)`,
        fix: `\`npm install --save-dev ${tools.missing.map((t) => `${t}@${tools.versions[t]}`).join(' ')}\` in your project, then run setup again`,
      });
    }
    if (!runs('cmake', ['--version'])) missing.push({ what: 'cmake not found (needed to build the addon from source)', fix: 'install cmake >= 3.18 (`apt install cmake` or `pip install cmake`)' });
    const cxx = process.env.CXX || 'c++';
    if (!runs(cxx, ['--version'])) missing.push({ what: `C++ compiler ${cxx} not found (needed to build the addon from source)`, fix: 'install g++ >= 11 or clang++ (`apt install g++`), or set CXX' });
  }
  return missing;
}

/** The npm packages a source build needs (cmake-js drives cmake, node-addon-api holds the C++
 * headers): development dependencies of torchgraph and optional peer dependencies of the package,
 * so that installs using the prebuilt addon do not carry them (the way sharp does it). */
function sourceBuildTools() {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  const versions = { ...pkg.devDependencies, ...pkg.peerDependencies };
  const names = ['cmake-js', 'node-addon-api'];
  const found = (name) => {
    try { require.resolve(`${name}/package.json`, { paths: [ROOT] }); return true; } catch { return false; }
  };
  return { missing: names.filter((n) => !found(n)), versions: Object.fromEntries(names.map((n) => [n, versions[n]])) };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function pidAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
}

/** Hold the lock folder `lock` while `fn` runs (mkdir is atomic; a lock whose owner process on
 * this host is gone is taken over). The same scheme as the model cache's lock (lib/app/models.ts). */
async function withLock(lock, fn, { timeoutMs = 30 * 60_000, onWait } = {}) {
  const start = Date.now();
  let told = false;
  for (;;) {
    try {
      fs.mkdirSync(lock);
      break;
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
    }
    let stale = false;
    try {
      const owner = JSON.parse(fs.readFileSync(path.join(lock, 'owner.json'), 'utf8'));
      stale = owner.host === os.hostname() && !pidAlive(owner.pid);
    } catch {
      try { stale = Date.now() - fs.statSync(lock).mtimeMs > 60_000; } catch { /* just released */ }
    }
    if (stale) { fs.rmSync(lock, { recursive: true, force: true }); continue; }
    if (Date.now() - start > timeoutMs) throw new ResolveError(`timed out waiting for another install (lock ${lock}); remove it if none is running`);
    if (!told && onWait) { onWait(); told = true; }
    await sleep(250);
  }
  try {
    fs.writeFileSync(path.join(lock, 'owner.json'), JSON.stringify({ pid: process.pid, host: os.hostname(), started: new Date().toISOString() }));
    return await fn();
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}

/** pip, quiet, its output kept for the error message rather than shown (retry warnings and all). */
function pipInstall(target) {
  const py = pythonExe();
  const args = ['-m', 'pip', 'install', '--quiet', '--no-compile', '--disable-pip-version-check', '--no-warn-script-location',
    '--retries', '1', '--target', target, PINNED];
  return new Promise((resolveP, reject) => {
    const child = spawn(py, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const keep = (s) => { out = (out + s).slice(-4000); };
    child.stdout.setEncoding('utf8').on('data', keep);
    child.stderr.setEncoding('utf8').on('data', keep);
    child.on('error', (e) => reject(new ResolveError(`cannot run ${py}: ${e.message}`)));
    child.on('close', (code) => {
      if (code === 0) return resolveP();
      const last = out.trim().split('\n').filter((l) => !/Retrying|WARNING: Retrying/.test(l)).slice(-8).join('\n');
      reject(new ResolveError(`pip could not install ${PINNED} (exit ${code}):\n${last}\n` +
        'Fix: check that pip can reach the PyTorch wheels, or point TORCHGRAPH_LIBTORCH at an unpacked libtorch ' +
        '(or a Python torch package), or TORCHGRAPH_PYTHON at a Python that has torch.'));
    });
  });
}

/** Install the pinned CPU wheel into the cache once per machine and version: pip into a scratch
 * folder beside the final one, then one rename, under a lock, so concurrent installs neither
 * collide nor leave a half-written torch where the resolver looks. */
async function installPinned({ onWait } = {}) {
  const cache = cacheDir();
  const final = pinnedSite(cache);
  fs.mkdirSync(path.dirname(final), { recursive: true });
  await withLock(`${final}.lock`, async () => {
    if (fromCache(cache)) return; // another process installed it while we waited
    const scratch = `${final}.partial-${process.pid}`;
    fs.rmSync(scratch, { recursive: true, force: true });
    try {
      await pipInstall(scratch);
      if (!isTorchRoot(path.join(scratch, 'torch'))) throw new ResolveError(`pip reported success but ${scratch}/torch is not a usable torch package`);
      fs.rmSync(final, { recursive: true, force: true }); // a broken earlier attempt (fromCache refused it)
      fs.renameSync(scratch, final);
    } finally {
      fs.rmSync(scratch, { recursive: true, force: true });
    }
  }, { onWait });
  const r = fromCache(cache);
  if (!r) throw new ResolveError(`${final}/torch is not a usable torch ${PINNED_VERSION} package after installing`);
  return r;
}

/** The recorded resolution (written by setup), used at run time without re-running Python. */
function recorded() {
  const f = path.join(cacheDir(), 'libtorch.json');
  if (!fs.existsSync(f)) return null;
  try { return JSON.parse(fs.readFileSync(f, 'utf8')); } catch { return null; }
}

function record(info) {
  const dir = cacheDir();
  fs.mkdirSync(dir, { recursive: true });
  const f = path.join(dir, 'libtorch.json');
  const tmp = `${f}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(info, null, 2));
  fs.renameSync(tmp, f);
}

/** Where setup records how it ended, in the package itself: each project's copy of torchgraph
 * knows whether its own setup ran (npm may skip install scripts) and why it failed. */
function setupRecordFile() {
  return path.join(ROOT, '.setup-result.json');
}

/** How the last setup of this copy of torchgraph ended ({ ok, error?, at }), or null when none ran here. */
function lastSetup() {
  try { return JSON.parse(fs.readFileSync(setupRecordFile(), 'utf8')); } catch { return null; }
}

function recordSetup(result) {
  try {
    fs.writeFileSync(setupRecordFile(), JSON.stringify({ ...result, at: new Date().toISOString() }, null, 2));
  } catch { /* a read-only package folder: the first use then says setup has not run, which names the same fix */ }
}

function current() {
  return resolve() || recorded();
}

/** The libtorch the addon loads against in this process, without starting Python when it can:
 * TORCHGRAPH_PYTHON's torch is taken from the record when setup resolved that same Python. */
function forRuntime() {
  const py = process.env.TORCHGRAPH_PYTHON;
  if (!process.env.TORCHGRAPH_LIBTORCH && py) {
    const rec = recorded();
    if (rec && rec.source === `TORCHGRAPH_PYTHON=${py}` && fs.existsSync(rec.libDir)) return rec;
  }
  return resolve();
}

/** Load libtorch's shared libraries from `libDir` into the process (RTLD_GLOBAL; RTLD_NODELETE so
 * Node's dlclose after "did not self-register" keeps them), so that the addon's DT_NEEDED
 * entries (libtorch_cpu.so, libc10.so, by soname) are met whatever RPATH it has or lacks: a
 * prebuilt addon carries none. Linux only; elsewhere the addon's own RPATH is used. */
function preload(libDir) {
  if (process.platform !== 'linux') return [];
  const c = os.constants.dlopen;
  const RTLD_NODELETE = 0x1000; // glibc's value; not in os.constants
  const loaded = [];
  for (const name of ['libc10.so', 'libtorch_cpu.so', 'libtorch.so', 'libc10_cuda.so', 'libtorch_cuda.so']) {
    const f = path.join(libDir, name);
    if (!fs.existsSync(f)) {
      if (name.includes('cuda')) continue;
      throw new ResolveError(`${f}: cannot open shared object file: No such file or directory`);
    }
    try {
      process.dlopen({ exports: {} }, f, c.RTLD_NOW | c.RTLD_GLOBAL | RTLD_NODELETE);
    } catch (e) {
      if (!/did not self-register/.test(e.message)) throw e; // loaded; it is just not a Node addon
    }
    loaded.push(f);
  }
  return loaded;
}

module.exports = {
  resolve, installPinned, missingPrerequisites, recorded, record, current, forRuntime, preload, cacheDir, pinnedSite,
  isDevCheckout, withLock, lastSetup, recordSetup, sourceBuildTools, ResolveError, PINNED, PINNED_VERSION, ROOT,
  /** The cache folder (kept for scripts that read it as a constant). */
  get LOCAL_DIR() { return cacheDir(); },
};

if (require.main === module) {
  // Printers for build files: `node scripts/libtorch.js --print cmake-dir|include|libdir|ldflags|ldflags-norpath|json`.
  const what = process.argv[process.argv.indexOf('--print') + 1] || 'json';
  let info;
  try {
    info = current();
  } catch (e) {
    console.error(`torchgraph: ${e.message}`);
    process.exit(1);
  }
  if (!info) {
    console.error('torchgraph: libtorch not found; run `npx torchgraph setup` (or `node scripts/setup.js`), ' +
      'or set TORCHGRAPH_LIBTORCH / TORCHGRAPH_PYTHON');
    process.exit(1);
  }
  const libs = ['-ltorch', '-ltorch_cpu', '-lc10'].concat(info.cuda ? ['-Wl,--no-as-needed', '-ltorch_cuda', '-lc10_cuda', '-Wl,--as-needed'] : []);
  const out = {
    'cmake-dir': info.cmakeDir,
    include: info.includeDirs.join(' '),
    libdir: info.libDir,
    // The development build (cmake-js) finds libtorch through its RPATH as well.
    ldflags: [`-L${info.libDir}`, `-Wl,-rpath,${info.libDir}`, ...libs].join(' '),
    // binding.gyp (prebuilds): no absolute path baked in; the loader preloads libtorch (preload()).
    'ldflags-norpath': [`-L${info.libDir}`, ...libs].join(' '),
    cuda: info.cuda ? '1' : '0',
    json: JSON.stringify(info, null, 2),
  }[what];
  if (out === undefined) { console.error(`unknown --print ${what}`); process.exit(2); }
  process.stdout.write(out + '\n');
}
