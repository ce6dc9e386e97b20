#!/usr/bin/env node
'use strict';
// Installs the pinned model libraries of the real-model corpus (scripts/corpus.py) into
// .torchgraph/corpus-python/, beside (never into) the torch of scripts/libtorch.js. Only the
// corpus needs them: `torchgraph validate` does not.
//
// Every package is pinned and installed with --no-deps, so pip can never pull in a second torch
// (or the CUDA wheels a bare `torch` dependency resolves to). torchvision goes into a folder of
// its own: transformers imports torchvision whenever it is importable, and a torchvision that
// fails beside this torch (the local wheels are CUDA builds) would break every transformers
// model; the exporter puts that folder on the path only to try timm and torchvision.
//
//   node scripts/setup-corpus.js [--force]     prints one line; pip's output only on failure
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');
const libtorch = require('./libtorch');

const CORPUS_PYTHON = path.join(libtorch.LOCAL_DIR, 'corpus-python');
const LIB_DIR = path.join(CORPUS_PYTHON, 'lib');
const VISION_DIR = path.join(CORPUS_PYTHON, 'torchvision');
const STAMP = path.join(CORPUS_PYTHON, 'stamp.json');

/** The model libraries, and the versions their imports need (transformers 5.18 -> huggingface_hub
 * 1.x -> httpx, typer, ...), resolved once with pip and pinned here. */
const LIBRARIES = ['transformers==5.18.0', 'timm==1.0.29'];
const DEPENDENCIES = [
  'huggingface_hub==1.33.0', 'tokenizers==0.23.2', 'safetensors==0.8.0', 'regex==2026.9.29', 'pyyaml==6.0.3',
  'packaging==26.3', 'tqdm==4.70.1', 'numpy==2.4.6', 'pillow==12.3.0', 'filelock==4.0.8', 'fsspec==2026.9.0',
  'typing_extensions==4.16.0', 'httpx==0.28.1', 'httpcore==1.0.9', 'anyio==4.15.1', 'idna==3.20',
  'certifi==2026.7.22', 'h11==0.16.0', 'typer==0.27.2', 'click==8.5.0', 'shellingham==1.5.4', 'rich==15.0.0',
  'markdown-it-py==4.2.0', 'mdurl==0.1.2', 'pygments==2.21.0', 'annotated-doc==0.0.5',
];
/**
 * torchvision's compiled ops (nms, roi_align, ...) are built against a CUDA torch here: their
 * registration files, run at import, fail beside the CPU torch ("operator torchvision::nms does
 * not exist"), and with them every `import torchvision` (and timm, which imports it). Emptied,
 * torchvision's Python code imports: classification, segmentation and video models build; the
 * detection ops do not (the corpus has none).
 */
const REGISTRATION_FILES = ['_meta_registrations.py', '_autograd_registrations.py'];

function pythonCodeOnly(dir) {
  for (const f of REGISTRATION_FILES) {
    const file = path.join(dir, f);
    if (fs.existsSync(file)) fs.writeFileSync(file, '# Emptied by scripts/setup-corpus.js: the compiled ops these register are not built for this torch.\n');
  }
}

/** The torchvision built for the pinned torch (its metadata requires torch==2.13.0). */
const TORCHVISION = ['torchvision==0.28.0'];

class CorpusSetupError extends Error {}

/** The Python the resolver found torch with, and the folder holding that torch. */
function torchPython() {
  const info = libtorch.current();
  if (!info) throw new CorpusSetupError('no torch found: run `npm install` first (it installs the pinned CPU torch)');
  if (!info.python) {
    throw new CorpusSetupError(`torch comes from a bare libtorch (${info.source}); the corpus needs a Python torch: ` +
      'set TORCHGRAPH_PYTHON to a Python that has torch');
  }
  return { exe: info.python.exe, torchPath: info.python.pythonPath, torchVersion: info.version };
}

function pythonVersion(exe) {
  const r = spawnSync(exe, ['-c', 'import sys; print("%d.%d.%d" % sys.version_info[:3])'], { encoding: 'utf8' });
  if (r.status !== 0) throw new CorpusSetupError(`cannot run Python '${exe}': ${r.error ? r.error.message : r.stderr.trim()}`);
  return r.stdout.trim();
}

function wanted(py) {
  // Wheels with C extensions (numpy, tokenizers, ...) are built for one Python minor version.
  return { libraries: LIBRARIES, dependencies: DEPENDENCIES, torchvision: TORCHVISION, torchvisionEmptied: REGISTRATION_FILES, python: py.pythonVersion.split('.').slice(0, 2).join('.') };
}

function readStamp() {
  try { return JSON.parse(fs.readFileSync(STAMP, 'utf8')); } catch { return null; }
}

function pipInstall(exe, target, specs) {
  // --retries/--timeout: where the public index is unreachable (this project's machines resolve
  // from local wheel folders), pip's default 5 retries per package cost minutes.
  const args = ['-m', 'pip', 'install', '--no-deps', '--no-compile', '--only-binary', ':all:',
    '--disable-pip-version-check', '--no-warn-script-location', '--retries', '1', '--timeout', '10',
    '--target', target, ...specs];
  const r = spawnSync(exe, args, { encoding: 'utf8', maxBuffer: 64 << 20, env: { ...process.env, PIP_NO_INPUT: '1' } });
  if (r.status !== 0) {
    const out = `${r.stdout || ''}${r.stderr || ''}`.trim();
    process.stderr.write(out ? `${out}\n` : '');
    throw new CorpusSetupError(`pip could not install ${specs.join(' ')} into ${target}` +
      (r.error ? `: ${r.error.message}` : ` (exit ${r.status}; its output is above)`));
  }
}

/**
 * Install (once) and return where the corpus' libraries are:
 * { exe, torchPath, libPath, visionPath, versions, installed (true when this call ran pip), seconds }.
 */
function ensureCorpusPython({ force = false, log = (m) => console.error(`torchgraph: ${m}`) } = {}) {
  const base = torchPython();
  const py = { ...base, pythonVersion: pythonVersion(base.exe) };
  const want = wanted(py);
  const result = (installed, seconds) => ({
    exe: py.exe, torchPath: py.torchPath, libPath: LIB_DIR, visionPath: VISION_DIR, torchVersion: py.torchVersion, torchvisionEmptied: REGISTRATION_FILES,
    versions: Object.fromEntries([...LIBRARIES, ...TORCHVISION].map((s) => s.split('=='))), installed, seconds,
  });
  const stamp = readStamp();
  if (!force && stamp && JSON.stringify(stamp.want) === JSON.stringify(want) && fs.existsSync(LIB_DIR) && fs.existsSync(VISION_DIR)) {
    return result(false, 0);
  }
  const t0 = Date.now();
  log(`installing the corpus' model libraries (${LIBRARIES.join(', ')}, ${TORCHVISION.join(', ')}) into ${path.relative(libtorch.ROOT, CORPUS_PYTHON)}/ with pip`);
  fs.mkdirSync(libtorch.LOCAL_DIR, { recursive: true });
  // Built under a temporary name and renamed into place: a folder with a stamp is complete.
  const tmp = `${CORPUS_PYTHON}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  try {
    pipInstall(py.exe, path.join(tmp, 'lib'), [...LIBRARIES, ...DEPENDENCIES]);
    pipInstall(py.exe, path.join(tmp, 'torchvision'), TORCHVISION);
    pythonCodeOnly(path.join(tmp, 'torchvision', 'torchvision'));
    const seconds = Math.round((Date.now() - t0) / 100) / 10;
    fs.writeFileSync(path.join(tmp, 'stamp.json'), JSON.stringify({ want, seconds, installedAt: new Date().toISOString() }, null, 2));
    // Another process installed the same pins meanwhile: keep theirs (its Pythons may be running).
    const now = readStamp();
    if (!force && now && JSON.stringify(now.want) === JSON.stringify(want)) return result(true, seconds);
    const old = `${CORPUS_PYTHON}.old-${process.pid}`;
    if (fs.existsSync(CORPUS_PYTHON)) fs.renameSync(CORPUS_PYTHON, old);
    try {
      fs.renameSync(tmp, CORPUS_PYTHON);
    } catch (e) {
      // Lost a race with another installer between the two renames: theirs is as good.
      const theirs = readStamp();
      if (!theirs || JSON.stringify(theirs.want) !== JSON.stringify(want)) throw e;
    }
    fs.rmSync(old, { recursive: true, force: true });
    return result(true, seconds);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

module.exports = { ensureCorpusPython, CorpusSetupError, CORPUS_PYTHON, LIBRARIES, DEPENDENCIES, TORCHVISION };

if (require.main === module) {
  try {
    const r = ensureCorpusPython({ force: process.argv.includes('--force') });
    if (!r.installed) console.error(`torchgraph: corpus libraries already installed in ${path.relative(libtorch.ROOT, CORPUS_PYTHON)}/`);
  } catch (e) {
    console.error(`torchgraph: ${e.message}`);
    process.exit(1);
  }
}
