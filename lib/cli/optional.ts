// Lazily required modules that later work provides (the pipeline, the bench harness). A module
// that is absent is "not available in this build"; one that is present but fails to load is a
// real error and propagates.

/** require(id) resolved from lib/cli/, or undefined when `id` itself does not resolve. */
export function optionalRequire<T>(id: string): T | undefined {
  let resolved: string;
  try {
    resolved = require.resolve(id);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND') return undefined;
    throw e;
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(resolved) as T;
}
