#!/usr/bin/env node
'use strict';

// Make a prebuilt binary with prebuildify (node-gyp route, binding.gyp) into prebuilds/.
// node-gyp owns build/, which is also where cmake-js builds; so it runs in a scratch copy
// of the sources and leaves the development build alone.
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');

const ROOT = path.resolve(__dirname, '..');
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'torchgraph-prebuild-'));
try {
  for (const f of ['package.json', 'binding.gyp']) fs.copyFileSync(path.join(ROOT, f), path.join(scratch, f));
  for (const d of ['native', 'scripts']) fs.cpSync(path.join(ROOT, d), path.join(scratch, d), { recursive: true });
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(scratch, 'node_modules'));
  // The scratch copy is no checkout, so its resolver would look in the user cache: give it this
  // checkout's cache. The binary gets no RPATH (binding.gyp), whichever libtorch it links here.
  const env = { ...process.env, JOBS: String(os.cpus().length), TORCHGRAPH_CACHE: require('./libtorch').cacheDir() };
  const t0 = Date.now();
  execFileSync(path.join(ROOT, 'node_modules', '.bin', 'prebuildify'), ['--napi', '--strip'], { cwd: scratch, stdio: 'inherit', env });
  fs.cpSync(path.join(scratch, 'prebuilds'), path.join(ROOT, 'prebuilds'), { recursive: true });
  console.error(`torchgraph: prebuild made in ${((Date.now() - t0) / 1000).toFixed(1)} s -> prebuilds/`);
} finally {
  fs.rmSync(scratch, { recursive: true, force: true });
}
