// The unmodified model run once on the user's inputs before any rewriting: where it fails, the
// inputs are wrong for it (ERR_INVALID_ARG: exit 2 with the model's own reason), not torchgraph.
import { TorchGraphError } from '../core/errors';
import type { Module } from '../torchscript/module';
import { randomTensor } from '../torchscript/random';
import { disposeValue, type Tensor } from '../torchscript/tensor';
import type { InputSpec } from '../torchscript/propagate-shapes';

/** Runs forward once on `inputs` (moved to the model's device); a libtorch error there is ERR_INVALID_ARG. */
export async function checkModelTakesInputs(model: Module, inputs: readonly Tensor[]): Promise<void> {
  const moved = inputs.map((t) => (t.device === model.device ? t : t.to(model.device)));
  try {
    disposeValue((await model.run('forward', moved)).output);
  } catch (e) {
    if (e instanceof TorchGraphError && e.code === 'ERR_TORCH') {
      throw new TorchGraphError('ERR_INVALID_ARG', `the model rejects these inputs: ${e.message.split('\n')[0]}`, { cause: e });
    }
    throw e;
  } finally {
    moved.forEach((t, i) => { if (t !== inputs[i]) t.dispose(); });
  }
}

/** The same on seeded random tensors of `specs` (where only shapes and dtypes are given). */
export async function checkModelTakesSpecs(model: Module, specs: readonly InputSpec[]): Promise<void> {
  const inputs = specs.map((s, i) => randomTensor(s.shape, s.dtype, i));
  try {
    await checkModelTakesInputs(model, inputs);
  } finally {
    inputs.forEach((t) => t.dispose());
  }
}
