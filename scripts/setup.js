#!/usr/bin/env node
'use strict';
// `npm install` runs this: resolve (or install) libtorch, record it, build the addon with
// cmake-js unless a matching prebuild ships, and compile the TypeScript.
const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');
const libtorch = require('./libtorch');

const ROOT = libtorch.ROOT;
const t0 = Date.now();
const say = (m) => console.error(`torchgraph: ${m}`);

function run(cmd, args) {
  execFileSync(cmd, args, { cwd: ROOT, stdio: 'inherit' });
}

function binPath(name) {
  const p = path.join(ROOT, 'node_modules', '.bin', name);
  return fs.existsSync(p) ? p : null;
}

function main() {
  let info;
  try {
    info = libtorch.resolveOrInstall(say);
  } catch (e) {
    say(e.message);
    process.exit(1);
  }
  libtorch.record(info);
  say(`libtorch ${info.version} (${info.source}) at ${info.root}${info.cuda ? ' with CUDA' : ''}`);
  if (!info.version.startsWith(libtorch.PINNED_VERSION)) {
    say(`note: torchgraph is tested with torch ${libtorch.PINNED_VERSION}; found ${info.version}`);
  }

  const prebuildDir = path.join(ROOT, 'prebuilds', `${process.platform}-${process.arch}`);
  const hasPrebuild = fs.existsSync(prebuildDir) && fs.readdirSync(prebuildDir).some((f) => f.endsWith('.node'));
  if (process.env.TORCHGRAPH_SKIP_BUILD) {
    say('TORCHGRAPH_SKIP_BUILD set: not building the addon');
  } else if (hasPrebuild && !process.env.TORCHGRAPH_BUILD_FROM_SOURCE) {
    say(`using the prebuilt addon in ${path.relative(ROOT, prebuildDir)}`);
  } else {
    // Resolved as a module, not from .bin: when torchgraph is a dependency, npm may hoist it.
    let cmakeJs;
    try {
      cmakeJs = require.resolve('cmake-js/bin/cmake-js', { paths: [ROOT] });
    } catch {
      say('cmake-js is missing; run npm install');
      process.exit(1);
    }
    const jobs = String(Math.max(1, require('os').cpus().length));
    run(process.execPath, [cmakeJs, 'compile', '--CDCMAKE_BUILD_TYPE=Release', '-p', jobs]);
  }

  // A published package ships dist/; a checkout compiles it (typescript is a dev dependency).
  const tsc = binPath('tsc');
  if (tsc && fs.existsSync(path.join(ROOT, 'tsconfig.json'))) run(tsc, ['-p', 'tsconfig.json']);
  else if (!fs.existsSync(path.join(ROOT, 'dist', 'lib', 'index.js'))) say('warning: TypeScript is not installed and dist/ is missing');
  say(`setup done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

main();
