/** Stable error codes; every error torchgraph throws or rejects with carries one. */
export type ErrorCode =
  | 'ERR_INVALID_ARG'   // bad argument from the caller (shape, dtype, spec, option)
  | 'ERR_LOAD'          // a model file that is missing, empty, corrupt or not TorchScript
  | 'ERR_NO_DEVICE'     // a device that is not there (cuda without a GPU)
  | 'ERR_DISPOSED'      // use after dispose()
  | 'ERR_GRAPH'         // a graph that cannot be exported, verified or built
  | 'ERR_TORCH'         // libtorch raised (c10::Error, interpreter error)
  | 'ERR_NATIVE'        // any other C++ exception
  | 'ERR_ADDON'         // the native addon could not be loaded
  | 'ERR_EXPORT';       // the Python model exporter failed

export class TorchGraphError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TorchGraphError';
    this.code = code;
  }
}

/** Native errors arrive as plain Errors with a `code`; give them our class. */
export function fromNative(e: unknown): TorchGraphError {
  if (e instanceof TorchGraphError) return e;
  const err = e as { code?: string; message?: string };
  const code = (typeof err?.code === 'string' && err.code.startsWith('ERR_') ? err.code : 'ERR_NATIVE') as ErrorCode;
  return new TorchGraphError(code, err?.message ?? String(e), { cause: e });
}

/** Await a native promise, rethrowing with our error class. */
export async function native<T>(p: () => Promise<T>): Promise<T> {
  try {
    return await p();
  } catch (e) {
    throw fromNative(e);
  }
}

/** Run a synchronous native call, rethrowing with our error class. */
export function nativeSync<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw fromNative(e);
  }
}
