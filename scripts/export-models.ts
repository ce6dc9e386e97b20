// Export (or find in the cache) fixture models: npx tsx scripts/export-models.ts [NAME...]
//   NAME: mha_demo, vit_b_16, control_flow (default: all three)
//   --mha-variants SPEC.json: export the attention configs listed in SPEC.json instead
// Prints one line per fixture: name, cache hit or exported, folder.
import * as fs from 'fs';
import { ensureMhaVariants, ensureModel, MhaVariantSpec, MODEL_NAMES, ModelFixture } from '../lib/app/models';

function describe(fx: ModelFixture): string {
  const failed = Object.keys(fx.errors);
  return `${fx.name}: ${fx.cacheHit ? 'cached' : `exported in ${fx.exportSeconds.toFixed(1)}s`}, ` +
    `variants ${Object.keys(fx.variants).join(', ') || 'none'}${failed.length ? `, errors in ${failed.join(', ')}` : ''} -> ${fx.dir}`;
}

async function main(argv: string[]): Promise<number> {
  if (argv.includes('-h') || argv.includes('--help')) {
    console.log(`usage: export-models.ts [${MODEL_NAMES.join('|')}]... | --mha-variants SPEC.json`);
    return 0;
  }
  const log = (line: string) => console.error(line);
  const at = argv.indexOf('--mha-variants');
  if (at >= 0) {
    const file = argv[at + 1];
    if (!file) throw new Error('--mha-variants needs a SPEC.json');
    const specs = JSON.parse(fs.readFileSync(file, 'utf8')) as MhaVariantSpec[];
    const batch = await ensureMhaVariants(specs, { log });
    for (const fx of batch.fixtures) console.log(describe(fx));
    console.log(`${batch.fixtures.length} configs ${batch.cacheHit ? 'cached' : 'exported'} -> ${batch.dir}`);
    return 0;
  }
  const names = argv.length ? argv : [...MODEL_NAMES];
  for (const name of names) console.log(describe(await ensureModel(name, { log })));
  return 0;
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (e: Error) => {
  console.error(e.message);
  process.exitCode = 1;
});
