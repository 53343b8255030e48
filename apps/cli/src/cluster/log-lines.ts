/** One JSON log line as pino writes it (level, time, msg, plus any fields). */
export interface LogRecord {
  level?: number;
  msg?: string;
  address?: string;
  err?: { message?: string };
  [field: string]: unknown;
}

/** The JSON object on a log line, or undefined for anything else (plain text, partial JSON). */
export function parseLogLine(line: string): LogRecord | undefined {
  const text = line.trim();
  if (!text.startsWith('{')) return undefined;
  try {
    const value = JSON.parse(text) as unknown;
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as LogRecord)
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The `address` of a line announcing that a process listens, e.g.
 * `{"level":30,"msg":"coordinator listening","address":"127.0.0.1:7070"}` for the message
 * `coordinator listening`; undefined for every other line.
 */
export function listeningAddress(line: string, message: string): string | undefined {
  const record = parseLogLine(line);
  if (record?.msg !== message) return undefined;
  return typeof record.address === 'string' && record.address.length > 0
    ? record.address
    : undefined;
}

/** A log line as one short human line: pino's msg (and error message), or the text itself. */
export function describeLogLine(line: string): string {
  const record = parseLogLine(line);
  if (!record) return line.trim();
  const message = typeof record.msg === 'string' ? record.msg : line.trim();
  const error = typeof record.err?.message === 'string' ? record.err.message : undefined;
  return error && !message.includes(error) ? `${message}: ${error}` : message;
}

/**
 * Whether a line may explain a failure: pino errors (level >= 50) and plain text (an uncaught
 * exception's output), but not info logs, stack frames or Node's version footer.
 */
export function isErrorLine(line: string): boolean {
  const record = parseLogLine(line);
  if (!record) return line.trim().length > 0 && !/^\s+at |^Node\.js v\d/.test(line);
  return typeof record.level === 'number' ? record.level >= 50 : false;
}

/**
 * The one line that best says why a process failed, from its last error lines (see
 * isErrorLine): the last pino error, else the headline of an uncaught exception (`Error: ...`,
 * with the line after it when it ends in a colon), else the last line.
 */
export function failureLine(lines: readonly string[]): string | undefined {
  const logged = lines.filter((l) => parseLogLine(l) !== undefined);
  if (logged.length > 0) return describeLogLine(logged.at(-1)!);
  const headline = lines.findIndex((l) => /^\s*[\w.]*(Error|Exception)\b.*:/.test(l));
  if (headline >= 0) {
    const text = lines[headline]!.trim();
    const next = lines[headline + 1]?.trim();
    return text.endsWith(':') && next ? `${text} ${next}` : text;
  }
  return lines.at(-1)?.trim();
}

/**
 * An address a client on this machine can dial: a wildcard host (`0.0.0.0`, `::`) becomes the
 * loopback address of the same family.
 */
export function connectableAddress(address: string): string {
  const match = /^(.*):(\d+)$/.exec(address);
  if (!match) return address;
  const [, host, port] = match;
  if (host === '0.0.0.0' || host === '') return `127.0.0.1:${port}`;
  if (host === '::' || host === '[::]') return `[::1]:${port}`;
  return address;
}
