// The user's docs: README.md stays a short README (the manual lives in docs/), keeps the two
// setup commands (the main job, the tests: CI runs the latter), every relative link in README.md,
// ARCHITECTURE.md and docs/*.md resolves (file and #anchor), and every js example parses.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { docFiles, README, readmeExamples, ROOT } from '../support/readme';

/** The markdown outside fenced code blocks, line by line (fenced lines blanked). */
function prose(text: string): string[] {
  let fenced = false;
  return text.split('\n').map((l) => {
    if (/^\s*```/.test(l)) { fenced = !fenced; return ''; }
    return fenced ? '' : l;
  });
}

/** GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens, repeats numbered. */
function anchors(file: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const l of prose(fs.readFileSync(file, 'utf8'))) {
    const m = /^#{1,6}\s+(.*)$/.exec(l);
    if (!m) continue;
    const slug = m[1].trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    out.add(n ? `${slug}-${n}` : slug);
  }
  return out;
}

function fencedBlocks(text: string, info: string): string[] {
  const lines = text.split('\n');
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].trim() !== '```' + info) continue;
    const end = lines.indexOf('```', i + 1);
    out.push(lines.slice(i + 1, end).join('\n'));
    i = end;
  }
  return out;
}

describe('docs', () => {
  const readme = fs.readFileSync(README, 'utf8');

  it('README.md is a README: at most 200 lines, install and the three steps in its first 40', () => {
    const lines = readme.split('\n');
    assert.ok(lines.length <= 200, `README.md has ${lines.length} lines`);
    const head = lines.slice(0, 40).join('\n');
    for (const h of ['## Install', '## Three steps']) assert.ok(head.includes(h), `no "${h}" in README.md's first 40 lines`);
    for (const c of ['npx torchgraph validate', 'npx torchgraph optimize', '```js example']) assert.ok(head.includes(c), `no ${c} in README.md's first 40 lines`);
  });

  it("README.md gives the fresh machine's two commands: the main job and the tests (CI runs `npm test`)", () => {
    const sh = fencedBlocks(readme, 'sh').join('\n');
    assert.match(sh, /^npx torchgraph validate\s+#/m);
    assert.match(sh, /^npm test\s+#/m);
    assert.match(fs.readFileSync(path.join(ROOT, '.ci', 'run'), 'utf8'), /^npm test$/m);
  });

  it('every relative link resolves, to a file and, where given, a heading', () => {
    const bad: string[] = [];
    for (const file of [...docFiles(), path.join(ROOT, 'ARCHITECTURE.md')]) {
      prose(fs.readFileSync(file, 'utf8')).forEach((l, i) => {
        for (const m of l.replace(/`[^`]*`/g, '').matchAll(/\]\(([^)\s]+)\)/g)) {
          const link = m[1];
          if (/^[a-z]+:/i.test(link)) continue; // https:, mailto:
          const [target, anchor] = link.split('#');
          const to = target ? path.resolve(path.dirname(file), target) : file;
          const where = `${path.relative(ROOT, file)}:${i + 1}: ${link}`;
          if (!fs.existsSync(to)) bad.push(`${where} (no such file)`);
          else if (anchor && to.endsWith('.md') && !anchors(to).has(anchor)) bad.push(`${where} (no such heading)`);
        }
      });
    }
    assert.deepEqual(bad, []);
  });

  it('every js example is followed by its output block', () => {
    for (const file of docFiles()) readmeExamples(file);
    assert.ok(readmeExamples().length >= 2);
  });
});
