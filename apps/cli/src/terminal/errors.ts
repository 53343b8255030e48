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
      const message = error instanceof Error ? error.message : String(error);
      process.stderr.write(`lethe: error: ${message.split('\n')[0]}\n`);
      if (process.env['LETHE_DEBUG'] && error instanceof Error)
        process.stderr.write(`${error.stack}\n`);
      process.exitCode = error instanceof CliError ? error.exitCode : 1;
    }
  };
}
