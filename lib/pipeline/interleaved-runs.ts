// Timing several forms of one model against each other, the one way compare.ts (validate, bench),
// faster-form.ts (optimize) and slower-ops.ts (profiles) do it: a run whose outputs are disposed,
// each form warmed up, then the forms interleaved with the order rotating every repetition, and
// one test of "slower" for the times that come out.
import type { NativeRunResult } from '../torchscript/binding';
import { native } from '../core/errors';
import { flattenTensors, fromNativeValue } from '../torchscript/tensor';
import { warmUp, type WarmUp, type WarmUpOptions } from './warm-up';
import { median } from './median';

/** What a run measured: its time inside libtorch, its peak, its op times when profiled. */
export type RunMeasurement = Omit<NativeRunResult, 'output'>;

/** One run whose outputs are not wanted: run on the torch thread, its outputs disposed, what it measured returned. */
export async function runDiscardingOutputs(run: () => Promise<NativeRunResult>): Promise<RunMeasurement> {
  const { output, ...rest } = await native(run);
  flattenTensors(fromNativeValue(output)).forEach((t) => t.dispose());
  return rest;
}

/** One form to time: `warm` runs it once during warm-up (its time in ms), `timed` once per repetition. */
export interface TimedForm<T> {
  warm(): Promise<number>;
  timed(rep: number): Promise<T>;
}

export interface InterleaveOptions {
  repetitions: number;
  /** Warm-up of each form before timing; null: one run each, no settling check. */
  warmUp: WarmUpOptions | null;
  /** Called once after the warm-ups, before the first timed run (compare.ts reads the load average). */
  beforeTiming?: () => void;
  /** Called after every repetition (runs timed in the same rotation elsewhere: compare.ts's external runners). */
  afterRepetition?: (rep: number) => Promise<void>;
}

/**
 * Warm each form up in turn, then run them `repetitions` times, rotating the order every repetition
 * so that no form always runs first (caches, turbo). Returns each form's warm-up (undefined with
 * warmUp null) and its timed results, in the forms' order.
 */
export async function interleavedRuns<T>(
  forms: readonly TimedForm<T>[], o: InterleaveOptions,
): Promise<{ warmUps: (WarmUp | undefined)[]; results: T[][] }> {
  const warmUps: (WarmUp | undefined)[] = [];
  for (const f of forms) {
    if (o.warmUp) warmUps.push(await warmUp(() => f.warm(), o.warmUp));
    else { await f.warm(); warmUps.push(undefined); }
  }
  o.beforeTiming?.();
  const results: T[][] = forms.map(() => []);
  for (let rep = 0; rep < o.repetitions; rep++) {
    for (let k = 0; k < forms.length; k++) {
      const j = (rep + k) % forms.length;
      results[j].push(await forms[j].timed(rep));
    }
    await o.afterRepetition?.(rep);
  }
  return { warmUps, results };
}

/** How much slower in the medians a form must be, beyond every run being slower, to count as slower:
 * below it, the difference is timer-level noise. */
export const SLOWER_MARGIN = 0.05;

/** Slower beyond the runs' spread (every run of `a` slower than every run of `b`) and by more than
 * SLOWER_MARGIN in the medians. */
export function ranSlower(a: readonly number[], b: readonly number[]): boolean {
  return Math.min(...a) > Math.max(...b) && median(a) > (1 + SLOWER_MARGIN) * median(b);
}
