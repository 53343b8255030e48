import { existsSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A worker thread's entry file `name` (without extension) in `dir`, and the Node flags to start
 * it with: the `.js` when built, else the `.ts` when run from sources (tsx, vitest). A thread from
 * sources loads through tsx's CommonJS hook: Node 20 does not run `--import` hooks in worker
 * threads, and the source condition resolves the libs to their .ts.
 */
export function threadEntry(dir: string, name: string): { file: string; execArgv: string[] } {
  const built = join(dir, `${name}.js`);
  if (existsSync(built)) return { file: built, execArgv: process.execArgv };
  const execArgv: string[] = [];
  for (let i = 0; i < process.execArgv.length; i++) {
    const arg = process.execArgv[i]!;
    // tsx's --import hook (by package name or by file URL) would make the .ts entry load as
    // ESM; the --require hook below replaces it.
    if (arg === '--import' && process.execArgv[i + 1]?.includes('tsx')) i++;
    else if (!(arg.startsWith('--import=') && arg.includes('tsx'))) execArgv.push(arg);
  }
  if (!execArgv.some((a) => a.includes('@lethe/source')))
    execArgv.push('--conditions=@lethe/source');
  // Resolved here: a --require is looked up from the process's working directory.
  execArgv.push('--require', require.resolve('tsx/cjs'));
  return { file: join(dir, `${name}.ts`), execArgv };
}
