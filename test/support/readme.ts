// The docs' runnable examples: fenced blocks opened with ```js example (an ES module) or
// ```js example cjs (CommonJS), each followed by a ```text output block (the next fence) holding
// what it prints. Tests run them, so README.md and docs/*.md cannot drift.
import * as fs from 'fs';
import * as path from 'path';

export const ROOT = path.resolve(__dirname, '..', '..');
export const README = path.join(ROOT, 'README.md');

/** How an example is written: an ES module (`import`, top-level await) or CommonJS (`require`). */
export type ExampleModule = 'esm' | 'cjs';

export interface ReadmeExample {
  /** The markdown file, relative to the repository root (README.md, docs/x.md). */
  file: string;
  line: number;
  module: ExampleModule;
  code: string;
  output: string;
}

/** README.md, then docs/*.md: every markdown file a user reads. */
export function docFiles(): string[] {
  const docs = path.join(ROOT, 'docs');
  const pages = fs.existsSync(docs) ? fs.readdirSync(docs).filter((f) => f.endsWith('.md')).sort().map((f) => path.join(docs, f)) : [];
  return [README, ...pages];
}

export function readmeExamples(file = README): ReadmeExample[] {
  const rel = path.relative(ROOT, file);
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const out: ReadmeExample[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^```js example( cjs)?$/.exec(lines[i].trim());
    if (!m) continue;
    const start = i + 1;
    const end = lines.indexOf('```', start);
    const code = lines.slice(start, end).join('\n');
    let j = end + 1;
    while (j < lines.length && !lines[j].startsWith('```')) j++; // a sentence may come between
    if (lines[j]?.trim() !== '```text output') throw new Error(`${rel}:${i + 1}: a js example must be followed by a \`\`\`text output block`);
    const oend = lines.indexOf('```', j + 1);
    out.push({ file: rel, line: i + 1, module: m[1] ? 'cjs' : 'esm', code, output: lines.slice(j + 1, oend).join('\n') });
    i = oend;
  }
  return out;
}

/** The examples of README.md and every docs/*.md page. */
export function docExamples(): ReadmeExample[] {
  return docFiles().flatMap((f) => readmeExamples(f));
}

/**
 * An ES module example as CommonJS, as a user would rewrite it for a `.js` file in a project
 * without `"type": "module"`: each `import { a, b } from 'x'` as `const { a, b } = require('x')`,
 * the rest inside an async function (top-level await is ESM only).
 */
export function asCommonJS(code: string): string {
  const requires: string[] = [];
  const body: string[] = [];
  for (const line of code.split('\n')) {
    const m = /^import \{([^}]*)\} from '([^']+)';$/.exec(line.trim());
    if (m) requires.push(`const {${m[1].replace(/\s+as\s+/g, ': ')}} = require('${m[2]}');`);
    else if (/^\s*import\b/.test(line)) throw new Error(`cannot convert to CommonJS: ${line}`);
    else body.push(line);
  }
  return [...requires, '(async () => {', ...body, '})().catch((e) => { console.error(e); process.exitCode = 1; });', ''].join('\n');
}

/** Output compared line by line with trailing spaces ignored. */
export function normalizeOutput(s: string): string {
  return s.split('\n').map((l) => l.trimEnd()).join('\n').trim();
}
