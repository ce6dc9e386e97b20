// Inputs given + a method's schema -> every argument's value (lib/torchscript/arguments.ts): no libtorch.
import { strict as assert } from 'assert';
import { argumentsFromSchema, defaultToNative, missingArguments, resolveArguments, type ArgumentInfo } from '../../lib/torchscript/arguments';
import type { NativeArgument, NativeValue } from '../../lib/torchscript/binding';
import { TorchGraphError } from '../../lib/core/errors';

// What native signature('forward') says for a scripted nn.TransformerEncoder (self first).
const ENCODER: NativeArgument[] = [
  { name: 'self', type: '__torch__.torch.nn.modules.transformer.TransformerEncoder', kwargOnly: false, hasDefault: false },
  { name: 'src', type: 'Tensor', kwargOnly: false, hasDefault: false },
  { name: 'mask', type: 'Optional[Tensor]', kwargOnly: false, hasDefault: true, default: null },
  { name: 'src_key_padding_mask', type: 'Optional[Tensor]', kwargOnly: false, hasDefault: true, default: null },
  { name: 'is_causal', type: 'Optional[bool]', kwargOnly: false, hasDefault: true, default: null },
];

const arg = (name: string, type: string, d?: { default?: ArgumentInfo['default']; defaultRepr?: string }): ArgumentInfo =>
  ({ name, type, kwargOnly: false, hasDefault: d !== undefined, ...(d ?? {}) });

function invalidArg(f: () => unknown, pattern: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof TorchGraphError, String(e));
    assert.equal(e.code, 'ERR_INVALID_ARG');
    assert.match(e.message, pattern);
    return true;
  });
}

describe('method arguments and their defaults', () => {
  const sig = argumentsFromSchema(ENCODER);
  const x = { tensor: 'src' } as unknown as NativeValue;

  it('the schema without self: names, types, defaults (None is null)', () => {
    assert.deepEqual(sig.map((a) => a.name), ['src', 'mask', 'src_key_padding_mask', 'is_causal']);
    assert.equal(sig[0].hasDefault, false);
    assert.ok(!('default' in sig[0]));
    assert.equal(sig[3].type, 'Optional[bool]');
    assert.ok('default' in sig[3] && sig[3].default === null);
  });

  it('only src given: the three optional arguments take None', () => {
    assert.deepEqual(resolveArguments(sig, [x]), [x, null, null, null]);
  });

  it('all given: nothing is added; a middle one given keeps the later defaults', () => {
    assert.deepEqual(resolveArguments(sig, [x, x, x, true]), [x, x, x, true]);
    assert.deepEqual(resolveArguments(sig, [x, x]), [x, x, null, null]);
  });

  it('a missing argument without a default is ERR_INVALID_ARG naming it', () => {
    invalidArg(() => resolveArguments(sig, []), /missing argument 'src' \(Tensor\) without a default; 0 inputs given/);
    const two = [arg('x', 'Tensor'), arg('memory', 'Tensor'), arg('flag', 'bool', { default: false })];
    invalidArg(() => missingArguments(two, 1), /forward\(x, memory, flag=False\): missing argument 'memory'/);
    invalidArg(() => missingArguments(two, 0, 'encode'), /^encode\(.*missing arguments 'x' \(Tensor\), 'memory' \(Tensor\)/);
  });

  it('more inputs than arguments is ERR_INVALID_ARG with the signature', () => {
    invalidArg(() => resolveArguments(sig, [x, x, x, x, x]),
      /forward\(src, mask=None, src_key_padding_mask=None, is_causal=None\) takes 4 inputs, 5 given/);
  });

  it('defaults of every plain kind cross as the addon takes them', () => {
    const s = [
      arg('x', 'Tensor'),
      arg('flag', 'bool', { default: true }),
      arg('n', 'int', { default: 3n }),
      arg('scale', 'float', { default: 0.5 }),
      arg('mode', 'str', { default: 'mean' }),
      arg('dims', 'List[int]', { default: [1n, -1n] }),
      arg('empty', 'List[int]', { default: [] }),
      arg('weights', 'List[float]', { default: [1, 2.5] }),
      arg('pair', 'Tuple[int, int]', { default: [2n, 3n] }),
      arg('maybe', 'Optional[int]', { default: null }),
    ];
    assert.deepEqual(resolveArguments(s, [x]), [
      x, true, 3n, 0.5, 'mean',
      { list: [1n, -1n], elem: 'int' }, { list: [], elem: 'int' }, { list: [1, 2.5], elem: 'float' },
      [2n, 3n], null,
    ]);
    assert.deepEqual(defaultToNative(arg('l', 'Optional[List[int]]', { default: [4n] })), { list: [4n], elem: 'int' });
  });

  it('a default that is not plain data (a tensor, a device) must be given', () => {
    const s = [arg('x', 'Tensor'), { ...arg('device', 'Device'), hasDefault: true, defaultRepr: 'cpu' }];
    invalidArg(() => missingArguments(s, 1), /argument 'device' was not given and its default cpu cannot be passed from JS/);
    assert.deepEqual(missingArguments(s, 2), []);
  });

  it('errors write defaults as Python does', () => {
    const s = [arg('x', 'Tensor'), arg('a', 'float', { default: 1 }), arg('b', 'Tuple[int]', { default: [-1n] }), arg('c', 'List[int]', { default: [1n, 2n] }), arg('d', 'str', { default: 'x' })];
    invalidArg(() => missingArguments(s, 0), /^forward\(x, a=1\.0, b=\(-1,\), c=\[1, 2\], d="x"\): missing argument 'x'/);
  });

  it('a traced method (no defaults): exactly its inputs', () => {
    const traced = argumentsFromSchema([{ name: 'self', type: '__torch__.M', kwargOnly: false, hasDefault: false }, { name: 'x', type: 'Tensor', kwargOnly: false, hasDefault: false }]);
    assert.deepEqual(resolveArguments(traced, [x]), [x]);
    invalidArg(() => resolveArguments(traced, []), /missing argument 'x'/);
  });
});
