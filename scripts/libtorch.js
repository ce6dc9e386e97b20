#!/usr/bin/env node
'use strict';
// One resolver for libtorch, shared by setup, CMakeLists.txt, binding.gyp, the model
// exporter and the runtime load check, so no second list of paths is kept by hand.
//
// Order: TORCHGRAPH_LIBTORCH (an unpacked libtorch, a Python torch package, or a
// site-packages holding one) -> TORCHGRAPH_PYTHON (a Python whose torch we use) ->
// the project-local pinned wheel in .torchgraph/python (installed by `setup.js`).
const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');

const ROOT = path.resolve(__dirname, '..');
const LOCAL_DIR = path.join(ROOT, '.torchgraph');
const LOCAL_SITE = path.join(LOCAL_DIR, 'python');
const PINNED = 'torch==2.13.0';
const PINNED_VERSION = '2.13.0';

class ResolveError extends Error {}

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
  return describe(root, pythonPath ? 'project-local wheel' : `TORCHGRAPH_PYTHON=${exe}`,
    { exe, pythonPath: pythonPath || path.dirname(root) });
}

function fromLocal() {
  const root = path.join(LOCAL_SITE, 'torch');
  if (!isTorchRoot(root)) return null;
  return describe(root, 'project-local wheel', { exe: 'python3', pythonPath: LOCAL_SITE });
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
  return fromLocal();
}

/** Resolve, installing the pinned CPU wheel into .torchgraph/python when nothing else is found. */
function resolveOrInstall(log = console.error) {
  const found = resolve();
  if (found) return found;
  log(`no libtorch configured; installing ${PINNED} (CPU) into ${path.relative(ROOT, LOCAL_SITE)}/ with pip`);
  fs.mkdirSync(LOCAL_DIR, { recursive: true });
  const py = 'python3';
  try {
    execFileSync(py, ['-m', 'pip', 'install', '--quiet', '--no-compile', '--disable-pip-version-check',
      '--retries', '1', '--target', LOCAL_SITE, PINNED], { stdio: 'inherit' });
  } catch (e) {
    throw new ResolveError(`pip could not install ${PINNED}: ${e.message}\n` +
      'Fix: install Python 3 with pip, or point TORCHGRAPH_LIBTORCH at an unpacked libtorch ' +
      '(or a Python torch package), or TORCHGRAPH_PYTHON at a Python that has torch.');
  }
  const r = fromLocal();
  if (!r) throw new ResolveError(`pip reported success but ${LOCAL_SITE}/torch is not a usable torch package`);
  return r;
}

/** The recorded resolution (written by setup), used at run time without re-running Python. */
function recorded() {
  const f = path.join(LOCAL_DIR, 'libtorch.json');
  if (!fs.existsSync(f)) return null;
  try { return JSON.parse(fs.readFileSync(f, 'utf8')); } catch { return null; }
}

function record(info) {
  fs.mkdirSync(LOCAL_DIR, { recursive: true });
  const f = path.join(LOCAL_DIR, 'libtorch.json');
  const tmp = f + '.tmp';
  fs.writeFileSync(tmp, JSON.stringify(info, null, 2));
  fs.renameSync(tmp, f);
}

function current() {
  return resolve() || recorded();
}

module.exports = { resolve, resolveOrInstall, recorded, record, current, ResolveError, PINNED, PINNED_VERSION, ROOT, LOCAL_DIR };

if (require.main === module) {
  // Printers for build files: `node scripts/libtorch.js --print cmake-dir|include|libdir|ldflags|json`.
  const what = process.argv[process.argv.indexOf('--print') + 1] || 'json';
  let info;
  try {
    info = current();
  } catch (e) {
    console.error(`torchgraph: ${e.message}`);
    process.exit(1);
  }
  if (!info) {
    console.error('torchgraph: libtorch not found; run `npm install` (or `node scripts/setup.js`), ' +
      'or set TORCHGRAPH_LIBTORCH / TORCHGRAPH_PYTHON');
    process.exit(1);
  }
  const libs = ['-ltorch', '-ltorch_cpu', '-lc10'].concat(info.cuda ? ['-Wl,--no-as-needed', '-ltorch_cuda', '-lc10_cuda', '-Wl,--as-needed'] : []);
  const out = {
    'cmake-dir': info.cmakeDir,
    include: info.includeDirs.join(' '),
    libdir: info.libDir,
    ldflags: [`-L${info.libDir}`, `-Wl,-rpath,${info.libDir}`, ...libs].join(' '),
    cuda: info.cuda ? '1' : '0',
    json: JSON.stringify(info, null, 2),
  }[what];
  if (out === undefined) { console.error(`unknown --print ${what}`); process.exit(2); }
  process.stdout.write(out + '\n');
}
