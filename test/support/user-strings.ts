// Strings that look like what users type into the CLI (digits, x, colons, dtypes, devices,
// paths) and anything else, for the property tests of the parsers and of the whole CLI.
import fc from 'fast-check';

export const textish = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.stringMatching(/^[0-9xX:., +\-eE]{0,24}$/),
  fc.tuple(fc.array(fc.nat({ max: 99999 }), { maxLength: 6 }), fc.constantFrom('', ':float32', ':bool', ':int64', ':f16', ':', '::'))
    .map(([dims, dt]) => dims.join('x') + dt),
  fc.constantFrom('cuda', 'cuda:', 'cuda:0', 'cuda:-1', 'cpu ', 'meta', 'mps', '1e3', '0x10', '4294967295', '4294967296', 'Infinity', 'NaN', '-0', '.npy', '/dev/zero.npy'),
);
