// lib/core/constants.ts, the one reader of constants: what each reading takes and leaves, and
// the options that keep different meanings apart (graph constants only; scalars only).
import { strict as assert } from 'assert';
import { IntType, TensorType } from '../../lib/core/ir';
import { constantOf, constNumber, constOf, scalarConstant, tensorConstantOf } from '../../lib/core/constants';
import { setValueInfo } from '../../lib/core/value-info';
import { GB } from '../support/graph-builder';

describe('constants: one reader per fact (lib/core/constants.ts)', () => {
  it('constantOf gives the IR value (ints as bigints); constOf and constNumber the JS value', () => {
    const b = new GB();
    assert.equal(constantOf(b.int(3)), 3n);
    assert.equal(constOf(b.int(3)), 3);
    assert.equal(constNumber(b.bool(true)), 1);
    assert.deepEqual(constOf(b.ints([1, 2])), [1, 2]);
    assert.equal(constantOf(b.none()), null);
    assert.equal(constantOf(b.input('x', [2])), undefined);
  });

  it('a value the shape run recorded is read unless { recorded: false } asks for graph constants only', () => {
    const b = new GB();
    const x = b.input('x', [4, 8]);
    const size = b.g.createNode('aten::size', [x, b.int(0)], [IntType]).output;
    setValueInfo(size, { kind: 'Int', value: 4 });
    assert.equal(constOf(size), 4);
    assert.equal(constNumber(size), 4);
    assert.equal(constOf(size, { recorded: false }), undefined);
    assert.equal(constNumber(size, { recorded: false }), undefined);
    assert.equal(constantOf(size), undefined);
  });

  it('{ scalarOnly: true } leaves lists out; None stays null, apart from "not a constant"', () => {
    const b = new GB();
    assert.equal(constantOf(b.ints([1, 2]), { scalarOnly: true }), undefined);
    assert.deepEqual(constantOf(b.ints([1, 2])), [1n, 2n]);
    assert.equal(constantOf(b.none(), { scalarOnly: true }), null);
    assert.equal(constantOf(b.bool(false), { scalarOnly: true }), false);
  });

  it('tensorConstantOf and scalarConstant read a tensor constant; a one-element one is a number', () => {
    const b = new GB();
    const one = { shape: [], dtype: 'float32', toTypedArray: () => new Float32Array([0.5]) };
    const many = { shape: [2, 3], dtype: 'float32', toTypedArray: () => new Float32Array(6) };
    const tensorConstant = (t: object) => b.g.createNode('prim::Constant', [], [TensorType], { value: { kind: 't', value: t as never } }).output;
    const c1 = tensorConstant(one);
    const c6 = tensorConstant(many);
    assert.equal(tensorConstantOf(c1), one);
    assert.equal(scalarConstant(c1), 0.5);
    assert.equal(tensorConstantOf(c6), many);
    assert.equal(scalarConstant(c6), undefined);
    assert.equal(tensorConstantOf(b.float(2)), undefined);
    assert.equal(scalarConstant(b.float(2)), 2);
  });
});
