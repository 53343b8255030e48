/** An error whose message is meant for the user as is: printed on one line, exit code 1. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/**
 * Wraps a command action: any failure becomes one line on stderr and a non-zero exit code,
 * never a stack trace (set LETHE_DEBUG=1 for one).
 */
export function action<A extends unknown[]>(
  run: (...args: A) => Promise<void>,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await run(...args);
    } catch (error) {
      process.stderr.write(errorLine(error));
      if (process.env['LETHE_DEBUG'] && error instanceof Error)
        process.stderr.write(`${error.stack}\n`);
      process.exitCode = error instanceof CliError ? error.exitCode : 1;
    }
  };
}

/** The one line every failure prints: `lethe: error: <first line of the message>`. */
export function errorLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return `lethe: error: ${message.split('\n')[0]}\n`;
}

/**
 * A usage error from commander (`error: unknown option '--x'`) in the same one-line format as
 * every other failure, with where to look for the usage.
 */
export function usageError(message: string): string {
  // Commander may add a second line, e.g. "(Did you mean --no-augment?)": keep it, on this line.
  const text = message
    .trim()
    .replace(/^error: /, '')
    .replace(/\s*\n\s*/g, ' ');
  return errorLine(`${text} (see --help)`);
}
