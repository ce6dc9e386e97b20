// viewStrides against what torch 2.13 itself answers for Tensor.view (cases printed by PyTorch).
import { strict as assert } from 'assert';
import { contiguousStrides, viewStrides } from '../../lib/core/strides';

describe('strides: which views a strided tensor can take', () => {
  // [shape, strides, new shape, torch's strides of the view, or null where torch refuses]
  const cases: [number[], number[], number[], number[] | null][] = [
    [[5, 2, 96], [384, 192, 1], [5, 8, 24], null], // a column slice cannot merge its batch with heads
    [[5, 2, 96], [384, 192, 1], [10, 96], [192, 1]],
    [[5, 2, 96], [384, 192, 1], [5, 2, 4, 24], [384, 192, 24, 1]],
    [[5, 2, 96], [384, 192, 1], [5, 192], null],
    [[2, 7, 96], [2016, 288, 1], [2, 7, 4, 24], [2016, 288, 24, 1]],
    [[2, 7, 96], [2016, 288, 1], [14, 96], [288, 1]],
    [[2, 7, 96], [2016, 288, 1], [2, 672], null],
    [[6, 4], [1, 6], [24], null],
    [[6, 4], [1, 6], [6, 2, 2], [1, 12, 6]],
    [[4, 1, 6], [6, 6, 1], [4, 6], [6, 1]],
    [[4, 1, 3], [6, 6, 2], [12], [2]],
    [[3, 2], [4, 1], [6], null],
    [[3, 2], [4, 1], [3, 2, 1], [4, 1, 1]],
  ];
  for (const [shape, strides, next, want] of cases) {
    it(`[${shape}] strides [${strides}] as [${next}] -> ${want ? `[${want}]` : 'refused'}`, () => {
      assert.deepEqual(viewStrides(shape, strides, next), want);
    });
  }

  it('refuses a view with another element count, and lays out contiguous strides', () => {
    assert.equal(viewStrides([2, 3], [3, 1], [7]), null);
    assert.deepEqual(contiguousStrides([2, 3, 4]), [12, 4, 1]);
  });
});
