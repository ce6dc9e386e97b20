#!/usr/bin/env node
'use strict';

/* global setInterval, clearInterval */
// What `npm install` runs, and `npx torchgraph setup` where install scripts were skipped
// (--ignore-scripts, pnpm, npm's allowScripts): resolve libtorch (installing the pinned CPU
// wheel into the per-user cache once per machine and version), record it, use the prebuilt
// addon or build one from source, compile the TypeScript in a checkout, then load the addon in a
// fresh process. Prerequisites are checked before anything is downloaded.
const fs = require('fs');
const path = require('path');
const { execFileSync, spawn } = require('child_process');
const libtorch = require('./libtorch');

const ROOT = libtorch.ROOT;

/** Progress: a live line with the running time on a TTY, one line per finished step otherwise. */
function reporter(stream, quiet) {
  const tty = Boolean(stream.isTTY) && !quiet;
  let timer = null;
  let line = '';
  let t0 = 0;
  const clear = () => { if (timer) { clearInterval(timer); timer = null; stream.write('\r\x1b[2K'); } };
  return {
    start(msg) {
      t0 = Date.now();
      line = msg;
      if (tty) {
        const draw = () => stream.write(`\r\x1b[2Ktorchgraph: ${line}... ${Math.round((Date.now() - t0) / 1000)}s`);
        draw();
        timer = setInterval(draw, 1000);
      }
    },
    done(msg) {
      clear();
      if (!quiet) stream.write(`torchgraph: ${msg ?? line} (${((Date.now() - t0) / 1000).toFixed(1)} s)\n`);
    },
    note(msg) { clear(); if (!quiet) stream.write(`torchgraph: ${msg}\n`); },
    fail(msg) { clear(); stream.write(`torchgraph: ${msg}\n`); },
  };
}

function run(cmd, args, opts = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    let out = '';
    const keep = (s) => { out = (out + s).slice(-6000); };
    child.stdout.setEncoding('utf8').on('data', keep);
    child.stderr.setEncoding('utf8').on('data', keep);
    child.on('error', (e) => reject(new Error(`cannot run ${cmd}: ${e.message}`)));
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${path.basename(cmd)} ${args.slice(0, 2).join(' ')} failed (exit ${code}):\n${out.trim().split('\n').slice(-20).join('\n')}`))));
  });
}

/** The addon node-gyp-build would load (a local build, else a matching prebuild), or null. */
function matchingAddon() {
  try {
    return require('node-gyp-build').path(ROOT);
  } catch {
    return null;
  }
}

function buildFromSourceWanted() {
  // A checkout builds its own addon (that is the development build); a package only when no
  // prebuild matches this platform or when asked.
  return Boolean(process.env.TORCHGRAPH_BUILD_FROM_SOURCE) || libtorch.isDevCheckout() || !matchingAddon();
}

async function buildAddon() {
  // Resolved as a module, not from .bin: when torchgraph is a dependency, npm may hoist it. It is
  // a development dependency (an optional peer of the package): missingPrerequisites checked it.
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js', { paths: [ROOT] });
  const jobs = String(Math.max(1, require('os').cpus().length));
  await run(process.execPath, [cmakeJs, 'compile', '--CDCMAKE_BUILD_TYPE=Release', '-p', jobs]);
}

/** Load the addon as a user's program would, in a fresh process. */
async function checkLoads() {
  const script = `const l = require(${JSON.stringify(path.join(__dirname, 'libtorch.js'))});
    const info = l.forRuntime(); l.preload(info.libDir);
    const addon = process.env.TORCHGRAPH_ADDON ? require(process.env.TORCHGRAPH_ADDON) : require('node-gyp-build')(${JSON.stringify(ROOT)});
    console.log(addon.torchVersion + ' ' + (process.env.TORCHGRAPH_ADDON || require('node-gyp-build').path(${JSON.stringify(ROOT)})));`;
  return (await run(process.execPath, ['-e', script])).trim();
}

async function setup({ stream = process.stderr, quiet = false } = {}) {
  const r = reporter(stream, quiet);
  const t0 = Date.now();
  try {
    let info = libtorch.resolve();
    const fromSource = !process.env.TORCHGRAPH_SKIP_BUILD && buildFromSourceWanted();
    const missing = libtorch.missingPrerequisites({ needPip: !info, needCompiler: fromSource });
    if (missing.length) {
      for (const m of missing) r.fail(`${m.what}. Fix: ${m.fix}`);
      libtorch.recordSetup({ ok: false, error: missing.map((m) => `${m.what}. Fix: ${m.fix}`).join('; ') });
      return 1;
    }
    if (!info) {
      r.start(`installing ${libtorch.PINNED} (CPU) with pip into ${libtorch.pinnedSite()} (once per machine)`);
      info = await libtorch.installPinned({ onWait: () => r.note('another process is installing torch into the cache; waiting') });
      r.done(`installed torch ${info.version} into ${path.dirname(info.root)}`);
    }
    libtorch.record(info);
    r.note(`libtorch ${info.version} (${info.source}) at ${info.root}${info.cuda ? ' with CUDA' : ''}`);
    if (!info.version.startsWith(libtorch.PINNED_VERSION)) r.note(`note: torchgraph is tested with torch ${libtorch.PINNED_VERSION}; found ${info.version}`);

    if (process.env.TORCHGRAPH_SKIP_BUILD) {
      r.note('TORCHGRAPH_SKIP_BUILD set: not building the addon');
    } else if (fromSource) {
      r.start('building the addon from source with cmake-js');
      await buildAddon();
      r.done('built the addon (build/Release/torchgraph.node)');
    } else {
      r.note(`using the prebuilt addon ${path.relative(ROOT, matchingAddon())}`);
    }

    // A published package ships dist/; a checkout compiles it (typescript is a dev dependency).
    const tsc = path.join(ROOT, 'node_modules', '.bin', 'tsc');
    if (libtorch.isDevCheckout() && fs.existsSync(tsc)) {
      r.start('compiling the TypeScript');
      execFileSync(tsc, ['-p', 'tsconfig.json'], { cwd: ROOT, stdio: 'inherit' });
      r.done('compiled the TypeScript');
    }
    if (!process.env.TORCHGRAPH_SKIP_BUILD) {
      r.start('loading the addon in a fresh process');
      r.done(`the addon loads: torch ${await checkLoads()}`);
    }
    r.note(`setup done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    libtorch.recordSetup({ ok: true, libtorch: info.root });
    return 0;
  } catch (e) {
    const unwritable = ['EACCES', 'EROFS', 'EPERM'].includes(e.code);
    const msg = e.message.replace(/^torchgraph:\s*/, '') + (unwritable ? `. Fix: set TORCHGRAPH_CACHE to a folder you can write (the cache is ${libtorch.cacheDir()})` : '');
    r.fail(msg);
    libtorch.recordSetup({ ok: false, error: msg });
    return 1;
  }
}

module.exports = { setup };

if (require.main === module) {
  setup({ quiet: process.argv.includes('--quiet') }).then((code) => { process.exitCode = code; });
}
