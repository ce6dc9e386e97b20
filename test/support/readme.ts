// The README's runnable examples: fenced blocks opened with ```js example, each followed by a
// ```text output block (the next fence) holding what it prints. Tests run them, so the README cannot drift.
import * as fs from 'fs';
import * as path from 'path';

export const README = path.resolve(__dirname, '..', '..', 'README.md');

export interface ReadmeExample { line: number; code: string; output: string }

export function readmeExamples(file = README): ReadmeExample[] {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const out: ReadmeExample[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].trim() !== '```js example') continue;
    const start = i + 1;
    const end = lines.indexOf('```', start);
    const code = lines.slice(start, end).join('\n');
    let j = end + 1;
    while (j < lines.length && !lines[j].startsWith('```')) j++; // a sentence may come between
    if (lines[j]?.trim() !== '```text output') throw new Error(`README.md:${i + 1}: a js example must be followed by a \`\`\`text output block`);
    const oend = lines.indexOf('```', j + 1);
    out.push({ line: i + 1, code, output: lines.slice(j + 1, oend).join('\n') });
    i = oend;
  }
  return out;
}

/** Output compared line by line with trailing spaces ignored. */
export function normalizeOutput(s: string): string {
  return s.split('\n').map((l) => l.trimEnd()).join('\n').trim();
}
