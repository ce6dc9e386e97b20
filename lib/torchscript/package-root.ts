// Where torchgraph's own files are: the package root (the folder holding its package.json),
// whether running from lib/ under tsx or from dist/lib/ when compiled, and its version.
import * as fs from 'fs';
import * as path from 'path';

let rootCache: string | undefined;

/** The nearest folder above this file whose package.json is torchgraph's. */
export function packageRoot(): string {
  if (rootCache) return rootCache;
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const pj = path.join(dir, 'package.json');
    if (fs.existsSync(pj) && (JSON.parse(fs.readFileSync(pj, 'utf8')) as { name?: string }).name === 'torchgraph') return (rootCache = dir);
    if (path.dirname(dir) === dir) throw new Error(`torchgraph: no torchgraph package.json above ${__dirname}`);
  }
}

/** torchgraph's version from its package.json ('0.0.0-unknown' when it cannot be read). */
export function packageVersion(): string {
  try {
    const pkg = JSON.parse(fs.readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')) as { version?: string };
    return pkg.version ?? '0.0.0-unknown';
  } catch {
    return '0.0.0-unknown';
  }
}
