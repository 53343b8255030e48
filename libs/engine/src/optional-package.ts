import { createRequire } from 'node:module';

const load = createRequire(__filename);

export type LoadResult =
  { ok: true; module: unknown } | { ok: false; missing: boolean; message: string };

/**
 * `require` that turns "not installed" and "installed but broken" (e.g. tfjs-node without its
 * libtensorflow binary) into values, so an absent optional engine is a fallback, not a crash.
 */
export function loadOptional(name: string): LoadResult {
  try {
    return { ok: true, module: load(name) };
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    const message = error instanceof Error ? error.message : String(error);
    const missing = code === 'MODULE_NOT_FOUND' && message.includes(`'${name}'`);
    return { ok: false, missing, message: message.split('\n')[0] ?? message };
  }
}

/** The installed version, without loading the package itself. */
export function installedVersion(name: string): string | undefined {
  try {
    return (load(`${name}/package.json`) as { version?: string }).version;
  } catch {
    return undefined;
  }
}
