// docs/report.png from a real run: `validate MODEL --report` on a built-in model (ViT-B/16 by
// default), then the HTML report screenshotted in Debian's headless Chromium with playwright-core.
//
//   npm run report:screenshot                                  # vit_b_16 -> docs/report.png
//   npm run report:screenshot -- --model mha_demo --out /tmp/r.png
//   npm run report:screenshot -- --html report.html            # keep the report there (written when absent)
//
// TORCHGRAPH_CHROMIUM overrides the browser (default /usr/bin/chromium). The page is 1200 CSS px
// wide (--width), shot at 0.85 device pixels per CSS pixel (--scale) in a window 900 px high
// (--height: the graph's frame is 72% of it). The sections named by --hide (ids, comma-separated)
// are left out of the picture, to keep the PNG under 400 KB (default: the unfused graph, the
// attention table and the run's details).
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { pathToFileURL } from 'url';

const ROOT = path.resolve(__dirname, '..');
const CHROMIUM = process.env.TORCHGRAPH_CHROMIUM ?? '/usr/bin/chromium';

interface Options { model: string; out: string; html?: string; hide: string[]; width: number; height: number; scale: number }

function parseArgs(argv: string[]): Options {
  const o: Options = {
    model: 'vit_b_16', out: path.join(ROOT, 'docs', 'report.png'),
    hide: ['graph-section', 'attention-section', 'environment-section'], width: 1200, height: 900, scale: 0.85,
  };
  for (let i = 0; i < argv.length; i++) {
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${argv[i - 1]} needs a value`);
      return v;
    };
    switch (argv[i]) {
      case '--model': o.model = value(); break;
      case '--out': o.out = path.resolve(value()); break;
      case '--html': o.html = path.resolve(value()); break;
      case '--hide': o.hide = value().split(',').filter(Boolean); break;
      case '--width': o.width = Number(value()); break;
      case '--height': o.height = Number(value()); break;
      case '--scale': o.scale = Number(value()); break;
      default: throw new Error(`unknown argument ${argv[i]} (--model NAME, --out FILE.png, --html FILE, --hide IDS, --width PX, --height PX, --scale X)`);
    }
  }
  return o;
}

/** validate MODEL --report FILE through the CLI, as a user runs it. A failed check still writes the report (exit 1). */
function writeReport(model: string, file: string): void {
  const cli = path.join(ROOT, 'lib', 'app', 'cli', 'main.ts');
  const tsx = path.join(ROOT, 'node_modules', '.bin', 'tsx');
  console.error(`validate ${model} --report ${file}`);
  const r = spawnSync(tsx, [cli, 'validate', model, '--report', file], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.error) throw r.error;
  if (!fs.existsSync(file)) throw new Error(`validate ${model} exited ${r.status} and wrote no report`);
}

interface Page {
  goto(url: string): Promise<unknown>;
  addStyleTag(o: { content: string }): Promise<unknown>;
  evaluate<T>(js: string): Promise<T>;
  screenshot(o: { path: string; fullPage: boolean }): Promise<unknown>;
}
interface Browser { newPage(o: Record<string, unknown>): Promise<Page>; close(): Promise<void> }

async function screenshot(html: string, o: Options): Promise<void> {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM} (apt-get install -y chromium, or set TORCHGRAPH_CHROMIUM)`);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const pw = require('playwright-core') as { chromium: { launch(o: Record<string, unknown>): Promise<Browser> } };
  const browser = await pw.chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-lcd-text'] });
  try {
    const page = await browser.newPage({ viewport: { width: o.width, height: o.height }, deviceScaleFactor: o.scale });
    await page.goto(pathToFileURL(html).href);
    if (o.hide.length) await page.addStyleTag({ content: `${o.hide.map((id) => `#${id}`).join(', ')} { display: none; }` });
    const ready = await page.evaluate<boolean>('!!document.querySelector("svg.graph g.viewport[data-ready]")');
    if (!ready) throw new Error(`${html}: the page script did not run`);
    fs.mkdirSync(path.dirname(o.out), { recursive: true });
    await page.screenshot({ path: o.out, fullPage: true });
  } finally {
    await browser.close();
  }
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  // --html FILE: the report to shoot, written by validate first when it does not exist yet.
  let tmp: string | undefined;
  if (!o.html) tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tg-report-shot-'));
  const html = o.html ?? path.join(tmp!, `${o.model}.html`);
  if (!fs.existsSync(html)) writeReport(o.model, html);
  try {
    await screenshot(html, o);
  } finally {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  }
  console.error(`${o.out}: ${(fs.statSync(o.out).size / 1024).toFixed(0)} KiB`);
}

main().catch((e: unknown) => {
  console.error(`report-screenshot: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
