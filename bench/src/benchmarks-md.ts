import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';

const FILE = join(__dirname, '..', '..', 'BENCHMARKS.md');
const HEADER =
  '# Benchmarks\n\nWritten by the scripts in `bench/`; each section is replaced when its benchmark runs again.\n';

/** The machine a result was measured on, for the record next to it. */
export function machine(): string {
  const cpu = cpus();
  return `${cpu[0]?.model ?? 'unknown CPU'}, ${cpu.length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, Node.js ${process.versions.node}, ${process.platform}-${process.arch}`;
}

/** Replaces (or appends) the section between `<!-- bench:NAME -->` markers in BENCHMARKS.md. */
export function writeSection(name: string, markdown: string): void {
  let text: string;
  try {
    text = readFileSync(FILE, 'utf8');
  } catch {
    text = HEADER;
  }
  const start = `<!-- bench:${name} -->`;
  const end = `<!-- /bench:${name} -->`;
  const block = `${start}\n${markdown.trim()}\n${end}`;
  const i = text.indexOf(start);
  const j = text.indexOf(end);
  text =
    i >= 0 && j > i
      ? text.slice(0, i) + block + text.slice(j + end.length)
      : `${text.trimEnd()}\n\n${block}\n`;
  writeFileSync(`${FILE}.tmp`, text);
  renameSync(`${FILE}.tmp`, FILE);
}

export function today(): string {
  return new Date().toISOString().slice(0, 10);
}
