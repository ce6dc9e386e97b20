// Warm-up until a run's time has settled. A first run pays one-time costs (oneDNN's kernel
// choice and weight reorders, allocator growth, a scripted model's specialisation), and how many
// runs that takes depends on the model and the machine: a fixed count times some of them.
// Settled: three successive runs agree within `tolerance` of the fastest (or `floorMs`, for runs
// so short that timer noise dominates). Bounded by a run count and a time budget; not settling is
// reported, never hidden.

export interface WarmUpOptions {
  /** Runs before the check may pass (default 2). */
  min?: number;
  /** The most runs (default 30). */
  max?: number;
  /** The most time spent warming up, in ms (default 20 s). */
  budgetMs?: number;
  /** Relative agreement of three successive runs (default 0.2). */
  tolerance?: number;
  /** Absolute agreement that always counts, in ms (default 0.05). */
  floorMs?: number;
}

export interface WarmUp {
  /** Runs made. */
  runs: number;
  /** Whether the last three runs agreed. */
  settled: boolean;
}

export async function warmUp(runOnce: () => Promise<number>, opts: WarmUpOptions = {}): Promise<WarmUp> {
  const min = Math.max(1, opts.min ?? 2), max = Math.max(min, opts.max ?? 30);
  const budget = opts.budgetMs ?? 20_000, tol = opts.tolerance ?? 0.2, floor = opts.floorMs ?? 0.05;
  const t0 = performance.now();
  const recent: number[] = [];
  for (let runs = 1; ; runs++) {
    recent.push(await runOnce());
    if (recent.length > 3) recent.shift();
    // The last three runs agree (two slow first runs, as a profiling executor makes, are not steady).
    const lo = Math.min(...recent), hi = Math.max(...recent);
    if (runs >= min && recent.length === 3 && hi - lo <= Math.max(tol * lo, floor)) return { runs, settled: true };
    if (runs >= max || performance.now() - t0 >= budget) return { runs, settled: false };
  }
}
