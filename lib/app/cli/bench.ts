// `torchgraph bench`: the CLI parses the options; lib/app/bench.ts picks the cases and prints.
import { EXIT_CHECK_FAILED, EXIT_OK } from './errors';
import { runBench, type RunBenchOptions } from '../bench';

export type BenchOptions = RunBenchOptions;

/** Runs the harness; a missed target (passed: false) is exit 1. */
export async function dispatchBench(options: BenchOptions): Promise<number> {
  const r = await runBench(options);
  return r.passed ? EXIT_OK : EXIT_CHECK_FAILED;
}
