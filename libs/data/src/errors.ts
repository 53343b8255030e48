/**
 * Every failure caused by bad input data (a missing, truncated or undecodable file, a label out
 * of range, a checksum mismatch) is a DataError, so callers can tell "your data is broken" apart
 * from programming errors and report the file to the user.
 */
export class DataError extends Error {
  override readonly name = 'DataError';

  constructor(
    /** The file, folder or URL at fault. */
    readonly file: string,
    /** What is wrong with it, without the file name. */
    readonly problem: string,
    options?: { cause?: unknown },
  ) {
    super(`${file}: ${problem}`, options);
  }
}

/** A short reason for a caught error, for use inside a DataError's problem text. */
export function errMessage(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'not found';
    if (code === 'EACCES') return 'permission denied';
    return err.message;
  }
  return String(err);
}
