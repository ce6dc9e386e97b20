// `--no-LOWERING`: one switch per entry of the lowering table (lib/fusion/lowerings.ts), on
// validate, inspect, optimize and bench; names and help come from the table.
import { Option, type Command } from 'commander';
import { LOWERINGS, type LoweringName, type LoweringSwitches } from '../../fusion/lowerings';

/** foldBatchNorms -> fold-batch-norms: the flag is --no-fold-batch-norms. */
export function loweringFlag(name: LoweringName): string {
  return `--no-${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** One --no-NAME option per lowering, described from the table. */
export function addLoweringOptions(cmd: Command): Command {
  for (const l of LOWERINGS) {
    const what = l.what.replace(/\s*\([^()]*\.ts\)/g, ''); // the table names its file: not for --help
    const on = `on by default: ${l.when}${l.portable ? '' : '; specific to this machine'}`;
    cmd.addOption(new Option(loweringFlag(l.name), `switch off: ${what} (${on})`)
      .helpGroup('Lowerings (on by default where each says; --no-NAME switches one off):'));
  }
  return cmd;
}

/** The lowerings the user switched off: commander sets every --no-NAME option's value to true by
 * default, which would force on the ones that are off by default here; only flags given count. */
export function loweringSwitches(cmd: Command): LoweringSwitches {
  const out: LoweringSwitches = {};
  for (const l of LOWERINGS) {
    if (cmd.getOptionValueSource(l.name) === 'cli' && cmd.getOptionValue(l.name) === false) out[l.name] = false;
  }
  return out;
}

/** The lowerings off, for a note: "--no-in-place, --no-packed-linears". */
export function describeOff(s: LoweringSwitches): string {
  return LOWERINGS.filter((l) => s[l.name] === false).map((l) => loweringFlag(l.name)).join(', ');
}
