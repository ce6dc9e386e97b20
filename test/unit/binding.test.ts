// Load failures of the addon say what is wrong and how to fix it, for a development checkout
// and for an installed package (no libtorch needed).
import { strict as assert } from 'assert';
import { explainLoadFailure, notSetUpMessage, type LoadContext } from '../../lib/torchscript/binding';
import { formatError } from '../../lib/app/cli/errors';
import { TorchGraphError } from '../../lib/core/errors';

const libtorch = { version: '2.13.0+cpu', libDir: '/gone/torch/lib', source: 'pinned wheel in the torchgraph cache' };
const dev: LoadContext = { libtorch, devCheckout: true };
const consumer: LoadContext = { libtorch, devCheckout: false };

describe('addon load failures', () => {
  const moved = new Error('libtorch_cpu.so: cannot open shared object file: No such file or directory');

  it('missing libtorch: names the libtorch and how to reinstall (checkout)', () => {
    const msg = explainLoadFailure(moved, dev);
    assert.match(msg, /could not load the native addon/);
    assert.match(msg, /libtorch 2\.13\.0\+cpu \(pinned wheel in the torchgraph cache\) at \/gone\/torch\/lib/);
    assert.match(msg, /Fix: run `npm install`/);
  });

  it('missing libtorch in an installed package: the fix is setup or npm rebuild, not npm install', () => {
    const msg = explainLoadFailure(moved, consumer);
    assert.match(msg, /Fix: run `npx torchgraph setup`.*`npm rebuild torchgraph`/);
    assert.doesNotMatch(msg, /npm install|build:native/);
  });

  it('a different libtorch at run time: version mismatch, rebuild', () => {
    const e = new Error('/x/torchgraph.node: undefined symbol: _ZN3c105ErrorC2ENS_14SourceLocationE');
    assert.match(explainLoadFailure(e, dev), /not the one the addon was built against[\s\S]*npm run build:native/);
    assert.match(explainLoadFailure(e, consumer), /TORCHGRAPH_BUILD_FROM_SOURCE=1 npx torchgraph setup/);
  });

  it('not built: says how to build', () => {
    const e = new Error('No native build was found for platform=linux arch=x64 runtime=node abi=115 uv=1 libc=glibc node=20.20.2');
    assert.match(explainLoadFailure(e, dev), /npm install/);
    assert.match(explainLoadFailure(e, consumer), /No prebuilt addon matches[\s\S]*npx torchgraph setup/);
  });

  it('nothing set up: one line naming the command that finishes the install', () => {
    assert.equal(notSetUpMessage(false).split('\n').length, 1);
    assert.match(notSetUpMessage(false), /run `npx torchgraph setup`$/);
  });
});

describe('the CLI shows a load failure with its fix', () => {
  const e = new TorchGraphError('ERR_ADDON', explainLoadFailure(new Error('libc10.so: cannot open shared object file: No such file or directory'), consumer));

  it('without --verbose: what is wrong and the fix, one prefix', () => {
    const out = formatError(e, false);
    assert.match(out, /^torchgraph: could not load the native addon: libc10\.so/);
    assert.match(out, /\nFix: run `npx torchgraph setup`/);
    assert.doesNotMatch(out, /torchgraph: torchgraph:|--verbose/);
  });

  it('with --verbose: the same, plus the stack, still one prefix', () => {
    const out = formatError(e, true);
    assert.match(out, /Fix: run `npx torchgraph setup`/);
    assert.doesNotMatch(out, /torchgraph: torchgraph:/);
  });
});
