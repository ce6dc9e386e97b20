// Where the CLI finds the real pipeline (attention decomposition, partition, runtime).
//
// The integrator provides lib/pipeline.ts exporting `createPipeline(): ValidationPipeline` (see
// lib/cli/validate.ts for the interface). Until it exists, `validate` and `inspect --view
// decomposed|fused` exit 2 saying the pipeline is not available in this build.
//
// TORCHGRAPH_PIPELINE_MODULE=/abs/path overrides the module (for tests and experiments).
import * as path from 'path';
import { NotAvailableError } from './errors';
import { optionalRequire } from './optional';
import type { ValidationPipeline } from './validate';

export const PIPELINE_MODULE = '../pipeline';

interface PipelineModule {
  createPipeline?: () => ValidationPipeline;
  pipeline?: ValidationPipeline;
  default?: ValidationPipeline | (() => ValidationPipeline);
}

/** The pipeline, or NotAvailableError naming `what` needed it. */
export function loadPipeline(what: string): ValidationPipeline {
  const override = process.env.TORCHGRAPH_PIPELINE_MODULE;
  const id = override ? path.resolve(override) : PIPELINE_MODULE;
  const mod = optionalRequire<PipelineModule>(id);
  if (!mod) {
    throw new NotAvailableError(override
      ? `${what}: pipeline module ${override} (TORCHGRAPH_PIPELINE_MODULE) not found`
      : `${what} is not available in this build: the attention decomposition/fusion pipeline (lib/pipeline) is not part of it yet`);
  }
  const p = mod.createPipeline ? mod.createPipeline()
    : mod.pipeline ?? (typeof mod.default === 'function' ? mod.default() : mod.default);
  const missing = (['standard', 'decompose', 'partition', 'run'] as const).filter((k) => typeof p?.[k] !== 'function');
  if (!p || missing.length) {
    throw new NotAvailableError(`${what} is not available in this build: the pipeline module lacks ${missing.join(', ') || 'createPipeline()'}`);
  }
  return p;
}
