// Library arguments that are wrong in kind: each one ERR_INVALID_ARG with what is wrong, before
// it reaches libtorch (issue 14, case 7).
import { strict as assert } from 'assert';
import { TorchGraphError } from '../../lib/core/errors';
import { Module } from '../../lib/torchscript/module';
import { Tensor } from '../../lib/torchscript/tensor';
import { exportView } from '../../lib/transforms/module-views';
import { ensureModel } from '../../lib/app/models';
import type { Value } from '../../lib/torchscript/tensor';

const invalid = (re: RegExp) => (e: unknown) => {
  assert.ok(e instanceof TorchGraphError, String(e));
  assert.equal(e.code, 'ERR_INVALID_ARG', e.message);
  assert.match(e.message, re);
  return true;
};

describe('library arguments (issue 14)', function () {
  this.timeout(120_000);
  let m: Module;
  before(async () => { m = await Module.load((await ensureModel('mha_demo')).variants.traced!); });
  after(() => m.dispose());

  it('Tensor.from: the array must be the dtype\'s, bools 0/1, shapes non-negative integers', () => {
    assert.throws(() => Tensor.from(new Float64Array(4), [4], 'int64'), invalid(/int64 takes a BigInt64Array, got a Float64Array/));
    assert.throws(() => Tensor.from(new Uint8Array([1, 255]), [2], 'bool'), invalid(/only 0 and 1; element 1 is 255/));
    assert.throws(() => Tensor.from(new Float32Array(2), [2], 'float8' as never), invalid(/dtype must be one of/));
    assert.throws(() => Tensor.from('abc' as never, [3]), invalid(/data must be a TypedArray, got "abc"/));
    assert.throws(() => Tensor.from(new Float32Array(2), 'abc' as never), invalid(/shape must be an array/));
    assert.throws(() => Tensor.from(new Float32Array(2), [2.5]), invalid(/dimension 0 of the shape is 2.5/));
    assert.throws(() => Tensor.from(new Uint32Array(2) as never, [2]), invalid(/unsupported TypedArray/));
    const ok = Tensor.from(new Uint8Array([1, 0]), [2], 'bool');
    assert.equal(ok.dtype, 'bool');
    ok.dispose();
  });

  it('Tensor.empty and .to: NaN shapes, devices that are not strings', () => {
    assert.throws(() => Tensor.empty([NaN]), invalid(/dimension 0 of the shape is NaN/));
    assert.throws(() => Tensor.empty([-1]), invalid(/dimension 0/));
    assert.throws(() => Tensor.empty([2], 'float32', 123 as never), invalid(/device must be/));
    const meta = Tensor.empty([2, 3], 'float32', 'meta');
    assert.equal(meta.device, 'meta');
    meta.dispose();
    const t = Tensor.empty([2]);
    assert.throws(() => t.to('meta'), invalid(/device must be 'cpu', 'cuda' or 'cuda:N', got "meta"/));
    t.dispose();
  });

  it('forward: cyclic, deeply nested and non-value inputs; run with a bad method', async () => {
    const x = Tensor.empty([1, 2, 768]);
    const cyclic: Value[] = [x];
    cyclic.push(cyclic);
    await assert.rejects(m.forward(cyclic), invalid(/contains itself/));
    let deep: Value = x;
    for (let i = 0; i < 10_000; i++) deep = [deep];
    await assert.rejects(m.forward(deep), invalid(/nested deeper than 32/));
    await assert.rejects(m.forward((() => 1) as never), invalid(/a function is not a value/));
    await assert.rejects(m.forward(undefined as never), invalid(/undefined is not a value/));
    await assert.rejects(m.run(42 as never, []), invalid(/method must be a non-empty string/));
    await assert.rejects(m.run('forward', x as never), invalid(/inputs must be an array/));
    x.dispose();
  });

  it('exportView: a view that is not one', () => {
    assert.throws(() => exportView(m, 'banana' as never), invalid(/view must be 'standard' or 'inlined', got "banana"/));
    assert.equal(exportView(m, 'inlined').report.view, 'inlined');
  });
});
