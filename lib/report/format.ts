// Number formatting and a plain-text table, shared by the terminal and HTML renderings, and the
// HTML escaping shared by the HTML report's files.

/** Binary units, labelled as such: 4.59 MiB, 512 B, -: not measured. */
export function formatBytes(n: number | null | undefined): string {
  if (n === undefined || n === null || !Number.isFinite(n) || n < 0) return '-';
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return `${v >= 100 ? v.toFixed(1) : v.toFixed(2)} ${units[u]}`;
}

/** 17.56 GFLOP, 602.1 kFLOP, 120 FLOP. */
export function formatFlops(n: number | null | undefined): string {
  if (n === undefined || n === null || !Number.isFinite(n) || n < 0) return '-';
  const units: [number, string][] = [[1e12, 'TFLOP'], [1e9, 'GFLOP'], [1e6, 'MFLOP'], [1e3, 'kFLOP']];
  for (const [scale, unit] of units) if (n >= scale) return `${(n / scale).toFixed(2)} ${unit}`;
  return `${n} FLOP`;
}

/** 1,234,567 */
export function formatInt(n: number | null | undefined): string {
  if (n === undefined || n === null || !Number.isFinite(n)) return '-';
  return Math.round(n).toLocaleString('en-US');
}

export function formatMs(n: number | null | undefined): string {
  if (n === undefined || n === null || !Number.isFinite(n) || n < 0) return '-';
  if (n >= 100) return `${n.toFixed(0)} ms`;
  if (n >= 10) return `${n.toFixed(1)} ms`;
  return `${n.toFixed(2)} ms`;
}

/** Max abs diffs: 0, 1.19e-7, n/a (null: not comparable). */
export function formatDiff(n: number | null | undefined): string {
  if (n === undefined) return '-';
  if (n === null || Number.isNaN(n)) return 'n/a';
  if (n === 0) return '0';
  return n.toExponential(2).replace(/e([+-])(\d)$/, 'e$1$2');
}

export function formatPercent(x: number | undefined): string {
  return x === undefined || !Number.isFinite(x) ? '-' : `${(x * 100).toFixed(1)}%`;
}

export type Align = 'left' | 'right';

/**
 * Rows of cells as aligned plain text: the first column left-aligned, the others right-aligned
 * unless `align` says otherwise, two spaces between columns, a rule under the header.
 */
export function textTable(header: string[], rows: string[][], align?: Align[]): string {
  const cols = Math.max(header.length, ...rows.map((r) => r.length));
  const al = (i: number): Align => align?.[i] ?? (i === 0 ? 'left' : 'right');
  const width = (s: string) => [...s].length;
  const widths = Array.from({ length: cols }, (_, i) => Math.max(width(header[i] ?? ''), ...rows.map((r) => width(r[i] ?? ''))));
  const line = (cells: string[]) => widths.map((w, i) => {
    const c = cells[i] ?? '';
    const pad = ' '.repeat(w - width(c));
    return al(i) === 'left' ? c + pad : pad + c;
  }).join('  ').trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return [line(header), rule, ...rows.map(line)].join('\n') + '\n';
}

/** Text safe inside HTML (element content and quoted attribute values). */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}
