/** "1 sample", "2 samples": a count with its noun in the right number. */
export function counted(n: number, noun: string, plural = `${noun}s`): string {
  return `${n} ${n === 1 ? noun : plural}`;
}

/** " of subject 4711", " of subjects 4711, 42", or nothing. */
export function ofSubjects(subjects: readonly string[] | undefined): string {
  if (!subjects || subjects.length === 0) return '';
  return ` of ${subjects.length === 1 ? 'subject' : 'subjects'} ${subjects.join(', ')}`;
}
