// An output path given on the command line. Commander takes the next word as an option's value
// even when it is an option (`-o -q` writes a file named "-q"): a path that starts with '-' is
// refused, and ./-q still names such a file.
import { UsageError } from './errors';

export function outPath(file: string, option: string): string {
  if (file.startsWith('-')) {
    throw new UsageError(`${option} ${file}: looks like an option, not a file name (write ./${file} for a file of that name)`);
  }
  return file;
}
