// `torchgraph bench`: the CLI parses the options; the harness itself is the runtime's
// (lib/runtime/bench.ts exporting `runBench(options: BenchOptions)`). Until that module exists
// the command exits 2 saying so; it never prints made-up numbers.
import { CliError, EXIT_CHECK_FAILED, EXIT_OK, NotAvailableError } from './errors';
import { optionalRequire } from './optional';

export const BENCH_MODULE = '../runtime/bench';

/** What `torchgraph bench` hands to runBench (defined with the harness). */
export type BenchOptions = import('../runtime/bench').RunBenchOptions;

/** runBench may return an exit code, or an object whose `passed: false` means exit 1. */
export type BenchResult = number | void | { passed?: boolean };

interface BenchModule {
  runBench?: (options: BenchOptions) => BenchResult | Promise<BenchResult>;
}

export async function dispatchBench(options: BenchOptions): Promise<number> {
  const mod = optionalRequire<BenchModule>(BENCH_MODULE);
  if (!mod) throw new NotAvailableError('bench is not available in this build: the benchmark harness (lib/runtime/bench) is not part of it yet');
  if (typeof mod.runBench !== 'function') throw new CliError('bench is not available in this build: lib/runtime/bench does not export runBench()');
  const r = await mod.runBench(options);
  if (typeof r === 'number') return r;
  if (r && typeof r === 'object' && r.passed === false) return EXIT_CHECK_FAILED;
  return EXIT_OK;
}
