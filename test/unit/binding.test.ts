// Load failures of the addon say what is wrong and how to fix it (no libtorch needed).
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { explainLoadFailure } from '../../lib/torchscript/binding';

describe('addon load failures', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tg-root-'));
  before(() => {
    fs.mkdirSync(path.join(root, '.torchgraph'));
    fs.writeFileSync(path.join(root, '.torchgraph', 'libtorch.json'), JSON.stringify({ version: '2.13.0+cpu', libDir: '/gone/torch/lib', source: 'project-local wheel' }));
  });
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  it('missing libtorch: names the libtorch it was built against and how to reinstall', () => {
    const msg = explainLoadFailure(new Error('libtorch_cpu.so: cannot open shared object file: No such file or directory'), root);
    assert.match(msg, /could not load the native addon/);
    assert.match(msg, /built against libtorch 2\.13\.0\+cpu from project-local wheel at \/gone\/torch\/lib/);
    assert.match(msg, /Fix: run `npm install` again/);
    assert.match(msg, /TORCHGRAPH_LIBTORCH/);
  });

  it('a different libtorch at run time: version mismatch, rebuild', () => {
    const msg = explainLoadFailure(new Error('/x/torchgraph.node: undefined symbol: _ZN3c105ErrorC2ENS_14SourceLocationE'), root);
    assert.match(msg, /not the one the addon was built against/);
    assert.match(msg, /npm run build:native/);
  });

  it('not built: says how to build', () => {
    const msg = explainLoadFailure(new Error('No native build was found for platform=linux arch=x64 runtime=node abi=115 uv=1 libc=glibc node=20.20.2'), root);
    assert.match(msg, /has not been built/);
    assert.match(msg, /npm install/);
  });
});
