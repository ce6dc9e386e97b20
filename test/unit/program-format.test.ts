// The pure parts of the .pt2 reader: targets, module stacks, returns, int64 sentinels.
import * as assert from 'assert';
import { opOfTarget, returnCount, int64 } from '../../lib/program/to-graph';
import { parseModuleStack, sourceOf, c10ScalarType, dtypeOf } from '../../lib/program/format';

describe('program format (.pt2 model.json)', () => {
  it('maps targets to op and overload; higher-order ops and unknown callables to nothing', () => {
    assert.deepEqual(opOfTarget('torch.ops.aten.linear.default'), ['aten::linear', '']);
    assert.deepEqual(opOfTarget('torch.ops.aten.transpose.int'), ['aten::transpose', 'int']);
    assert.deepEqual(opOfTarget('_operator.mul'), ['aten::mul', 'int']);
    assert.equal(opOfTarget('torch.ops.higher_order.cond'), undefined);
    assert.equal(opOfTarget('builtins.print'), undefined);
  });

  it('reads nn_module_stack (paths may hold commas) and the innermost source line', () => {
    assert.deepEqual(parseModuleStack('L__self__,,pkg.M;L__self__attn,attn,torch.nn.modules.activation.MultiheadAttention'),
      [{ path: '', type: 'pkg.M' }, { path: 'attn', type: 'torch.nn.modules.activation.MultiheadAttention' }]);
    assert.deepEqual(parseModuleStack('k,layers.slice(None, 2, None),torch.nn.modules.container.Sequential'),
      [{ path: 'layers.slice(None, 2, None)', type: 'torch.nn.modules.container.Sequential' }]);
    assert.deepEqual(parseModuleStack(undefined), []);
    assert.equal(sourceOf('File "a.py", line 3, in f\n  x\n  File "b.py", line 9, in g'), 'b.py:9');
  });

  it('counts schema returns and clamps sys.maxsize read by JSON.parse to int64', () => {
    assert.equal(returnCount('aten::_assert_tensor_metadata(Tensor a, *, Device? device=None) -> ()'), 0);
    assert.equal(returnCount('aten::linear(Tensor input, Tensor weight, Tensor? bias=None) -> Tensor'), 1);
    assert.equal(returnCount('aten::native_layer_norm(Tensor input, SymInt[] s, Tensor? w, Tensor? b, float eps) -> (Tensor, Tensor, Tensor)'), 3);
    assert.equal(returnCount('aten::split.Tensor(Tensor(a -> *) self, SymInt split_size, int dim=0) -> Tensor(a)[]'), 1);
    assert.equal(int64(JSON.parse('9223372036854775807')), 2n ** 63n - 1n);
    assert.equal(int64(-JSON.parse('9223372036854775808')), -(2n ** 63n));
    assert.equal(int64(-1), -1n);
  });

  it('maps serialized scalar types to dtypes and c10 codes', () => {
    assert.equal(dtypeOf(7), 'float32');
    assert.equal(dtypeOf(5), 'int64');
    assert.equal(c10ScalarType(7), 6); // torch.float32
    assert.equal(c10ScalarType(12), 11); // torch.bool
    assert.equal(c10ScalarType(13), 15); // torch.bfloat16
  });
});
