/**
 * Polls `probe` every `everyMs` until it returns a value other than undefined or false; fails
 * naming `what` after `ms`.
 */
export async function until<T>(
  what: string,
  probe: () => T | false | undefined,
  ms = 120_000,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
