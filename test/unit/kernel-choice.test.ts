import { strict as assert } from 'assert';
import { kernelChoice } from '../../lib/fusion/kernel-choice';

describe('kernelChoice', () => {
  const variable = 'TORCHGRAPH_TEST_KERNEL';
  afterEach(() => { delete process.env[variable]; });

  it('takes the kernel the variable forces, and refuses any other value with what it takes', () => {
    for (const k of ['onednn', 'torchgraph'] as const) {
      process.env[variable] = k;
      assert.equal(kernelChoice(variable), k);
    }
    process.env[variable] = 'mkl';
    assert.throws(() => kernelChoice(variable), /TORCHGRAPH_TEST_KERNEL is 'mkl': it takes 'onednn' or 'torchgraph'/);
  });
});
