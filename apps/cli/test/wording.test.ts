import { describe, expect, it } from 'vitest';
import { counted, ofSubjects } from '../src/terminal/wording';

describe('wording', () => {
  it('puts a count and its noun in the same number', () => {
    expect(counted(1, 'sample')).toBe('1 sample');
    expect(counted(0, 'sample')).toBe('0 samples');
    expect(counted(3, 'recorded epoch')).toBe('3 recorded epochs');
    expect(counted(1, 'sample was', 'samples were')).toBe('1 sample was');
    expect(counted(2, 'sample was', 'samples were')).toBe('2 samples were');
  });

  it('names the subjects a request came from, or nothing', () => {
    expect(ofSubjects(['4711'])).toBe(' of subject 4711');
    expect(ofSubjects(['4711', '42'])).toBe(' of subjects 4711, 42');
    expect(ofSubjects([])).toBe('');
    expect(ofSubjects(undefined)).toBe('');
  });
});
