// The estimate-vs-measured check: a liveness estimate agrees with a measured peak when it is
// within a relative limit of it, or within an absolute floor (for tiny models a few bytes of
// rounding are a large fraction: 12 B of 60 B is 20%). The detail says which limit applied.
import type { ReportCheck } from '../report/types';
import { formatBytes } from '../report/format';

/** Relative limit: estimates within 10% of what the allocator saw. */
export const ESTIMATE_RELATIVE_LIMIT = 0.1;
/** Absolute floor: 64 KiB, about what one small intermediate or allocator alignment amounts to. */
export const ESTIMATE_ABSOLUTE_FLOOR = 64 * 1024;

export interface EstimateAgreement { passed: boolean; detail: string }

/** One estimate against one measurement. */
export function estimateAgreement(what: string, estimated: number, measured: number,
  limit = ESTIMATE_RELATIVE_LIMIT, floor = ESTIMATE_ABSOLUTE_FLOOR): EstimateAgreement {
  const off = Math.abs(estimated - measured);
  const rel = measured > 0 ? off / measured : off === 0 ? 0 : Infinity;
  const pct = Number.isFinite(rel) ? `${(rel * 100).toFixed(1)}%` : 'n/a';
  const allowed = Math.max(limit * measured, floor);
  const passed = off <= allowed;
  const which = limit * measured >= floor ? `the ${(limit * 100).toFixed(0)}% limit` : `the ${formatBytes(floor)} floor`;
  return { passed, detail: `${what} off by ${formatBytes(off)} (${pct}), ${passed ? 'within' : 'over'} ${which}` };
}

/** The check for the unfused and fused graphs. */
export function estimateVsMeasuredCheck(
  estimated: { unfused: number; fused: number }, measured: { unfused: number; fused: number },
): ReportCheck {
  const u = estimateAgreement('unfused', estimated.unfused, measured.unfused);
  const f = estimateAgreement('fused', estimated.fused, measured.fused);
  return {
    name: 'estimate-vs-measured',
    passed: u.passed && f.passed,
    detail: `estimated vs measured peaks: ${u.detail}; ${f.detail}`,
  };
}
