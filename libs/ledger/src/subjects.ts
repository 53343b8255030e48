import { readFile } from 'node:fs/promises';
import { type Dataset, parseSampleId, positionOfIndex } from '@lethe/data';
import { sha256Hex } from '@lethe/store';

/** Sample id → data subject id, read from a CSV or JSONL sidecar of a dataset. */
export interface SubjectTable {
  /** What the table was read from (for messages). */
  source: string;
  /** SHA-256 of the file's bytes: what a model card records. */
  sha256: string;
  subjectOf: ReadonlyMap<string, string>;
  /** Sample id → line number (1-based) it was read from. */
  lineOf: ReadonlyMap<string, number>;
}

/** A subject table that cannot be used; the message names the file and line. */
export class SubjectTableError extends Error {
  constructor(source: string, line: number, problem: string) {
    super(`${source} line ${line}: ${problem}`);
    this.name = 'SubjectTableError';
  }
}

const SAMPLE_COLUMNS = ['sample', 'sample_id', 'sampleid'];
const SUBJECT_COLUMNS = ['subject', 'subject_id', 'subjectid'];
const SUBJECT_ID = /^[\x21-\x7e]([\x20-\x7e]{0,126}[\x21-\x7e])?$/;

export async function readSubjectTable(file: string): Promise<SubjectTable> {
  const bytes = await readFile(file).catch((error: NodeJS.ErrnoException) => {
    // The cause keeps the errno code: a missing file is NOT_FOUND to the coordinator's callers.
    throw new Error(`cannot read subject table ${file}: ${error.code ?? error.message}`, {
      cause: error,
    });
  });
  return parseSubjectTable(bytes, file);
}

/**
 * CSV with a header naming a `sample` and a `subject` column (plain fields, no quoted commas),
 * or JSONL with one `{"sample": …, "subject": …}` object per line — told apart by the first
 * character. Sample ids are full ids (`cifar10:train:17`); each may appear once.
 */
export function parseSubjectTable(bytes: Uint8Array, source: string): SubjectTable {
  const text = new TextDecoder().decode(bytes);
  const lines = text.split(/\r?\n/);
  const subjectOf = new Map<string, string>();
  const lineOf = new Map<string, number>();
  const add = (line: number, sample: string, subject: string): void => {
    if (sample.length === 0) throw new SubjectTableError(source, line, 'empty sample id');
    try {
      parseSampleId(sample);
    } catch (error) {
      throw new SubjectTableError(source, line, (error as Error).message);
    }
    if (!SUBJECT_ID.test(subject)) {
      throw new SubjectTableError(
        source,
        line,
        `subject id ${JSON.stringify(subject.slice(0, 40))} must be 1–128 printable ASCII characters`,
      );
    }
    const first = lineOf.get(sample);
    if (first !== undefined) {
      throw new SubjectTableError(
        source,
        line,
        `sample ${sample} is listed twice (first on line ${first})`,
      );
    }
    subjectOf.set(sample, subject);
    lineOf.set(sample, line);
  };
  const firstLine = lines.findIndex((l) => l.trim().length > 0);
  if (firstLine < 0) throw new SubjectTableError(source, 1, 'the table is empty');
  if (lines[firstLine]!.trim().startsWith('{')) {
    lines.forEach((raw, i) => {
      if (raw.trim().length === 0) return;
      let row: unknown;
      try {
        row = JSON.parse(raw);
      } catch {
        throw new SubjectTableError(source, i + 1, 'not a JSON object');
      }
      const r = (typeof row === 'object' && row !== null ? row : {}) as Record<string, unknown>;
      const sample = SAMPLE_COLUMNS.map((c) => r[c]).find((v) => v !== undefined);
      const subject = SUBJECT_COLUMNS.map((c) => r[c]).find((v) => v !== undefined);
      if (typeof sample !== 'string' || typeof subject !== 'string') {
        throw new SubjectTableError(source, i + 1, 'needs string fields "sample" and "subject"');
      }
      add(i + 1, sample, subject);
    });
  } else {
    const header = splitCsv(lines[firstLine]!).map((h) => h.toLowerCase());
    const sampleColumn = header.findIndex((h) => SAMPLE_COLUMNS.includes(h));
    const subjectColumn = header.findIndex((h) => SUBJECT_COLUMNS.includes(h));
    if (sampleColumn < 0 || subjectColumn < 0) {
      throw new SubjectTableError(
        source,
        firstLine + 1,
        `the header needs a "sample" and a "subject" column, found ${header.join(', ')}`,
      );
    }
    for (let i = firstLine + 1; i < lines.length; i++) {
      if (lines[i]!.trim().length === 0) continue;
      const fields = splitCsv(lines[i]!);
      if (fields.length !== header.length) {
        throw new SubjectTableError(
          source,
          i + 1,
          `${fields.length} fields, the header has ${header.length}`,
        );
      }
      add(i + 1, fields[sampleColumn]!, fields[subjectColumn]!);
    }
  }
  if (subjectOf.size === 0) throw new SubjectTableError(source, firstLine + 1, 'no rows');
  return { source, sha256: sha256Hex(bytes), subjectOf, lineOf };
}

function splitCsv(line: string): string[] {
  return line.split(',').map((f) => f.trim().replace(/^"(.*)"$/, '$1'));
}

/**
 * Checks every sample the table names exists in one of the datasets (the full splits, before
 * any `--limit`): a table for other data is a mistake worth one clear error.
 */
export function checkSubjectTable(table: SubjectTable, datasets: readonly Dataset[]): void {
  for (const [sample, line] of table.lineOf) {
    const ref = parseSampleId(sample);
    const ds = datasets.find((d) => d.name === ref.dataset && d.split === ref.split);
    if (!ds || positionOfIndex(ds, ref.index) < 0) {
      throw new SubjectTableError(
        table.source,
        line,
        `sample ${sample} is not in the dataset (${datasets.map((d) => `${d.name}:${d.split}`).join(', ')})`,
      );
    }
  }
}

/** Reads a table and checks it against the datasets it is meant for (see checkSubjectTable). */
export async function loadSubjectTable(
  file: string,
  datasets: readonly Dataset[],
): Promise<SubjectTable> {
  const table = await readSubjectTable(file);
  checkSubjectTable(table, datasets);
  return table;
}
