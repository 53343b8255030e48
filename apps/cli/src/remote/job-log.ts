import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

/**
 * Jobs this directory submitted to a coordinator, newest last. The Coordinator API has no way
 * to list jobs, so `lethe status` shows these (via GetJob) as the jobs it knows of.
 */
export const JOB_LOG = join('.lethe', 'jobs.json');
const KEEP = 20;

export interface LoggedJob {
  jobId: string;
  coordinator: string;
  submittedAt: string;
}

export function readJobLog(cwd = process.cwd()): LoggedJob[] {
  const path = resolve(cwd, JOB_LOG);
  if (!existsSync(path)) return [];
  try {
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    return Array.isArray(parsed)
      ? parsed.filter(
          (j): j is LoggedJob =>
            typeof (j as Partial<LoggedJob>).jobId === 'string' &&
            typeof (j as Partial<LoggedJob>).coordinator === 'string',
        )
      : [];
  } catch {
    return [];
  }
}

/** Remembers a submitted job; best effort (a read-only directory only loses the record). */
export function logJob(jobId: string, coordinator: string, cwd = process.cwd()): void {
  try {
    const path = resolve(cwd, JOB_LOG);
    const jobs = readJobLog(cwd).filter(
      (j) => !(j.jobId === jobId && j.coordinator === coordinator),
    );
    jobs.push({ jobId, coordinator, submittedAt: new Date().toISOString() });
    mkdirSync(dirname(path), { recursive: true });
    const temporary = `${path}.${process.pid}.tmp`;
    writeFileSync(temporary, `${JSON.stringify(jobs.slice(-KEEP), null, 2)}\n`);
    renameSync(temporary, path);
  } catch {
    // best effort
  }
}
