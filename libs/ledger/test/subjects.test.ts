import { formatSampleId, makeSyntheticDataset } from '@lethe/data';
import { describe, expect, it } from 'vitest';
import { buildRoster, checkSubjectTable, parseSubjectTable, rosterSamples } from '../src';

const train = makeSyntheticDataset({ perClass: 2, split: 'train', seed: 1, classes: 2 });
const id = (i: number): string => formatSampleId(train.name, 'train', i);
const parse = (text: string, file = 'subjects.csv') =>
  parseSubjectTable(new TextEncoder().encode(text), file);

describe('subject tables', () => {
  it('reads CSV and JSONL alike and hashes the bytes', () => {
    const csv = parse(`sample_id, subject_id\n${id(0)},ann\n\n${id(3)},bob\n`);
    const jsonl = parse(
      `{"sample":"${id(0)}","subject":"ann"}\n{"sample":"${id(3)}","subject":"bob"}\n`,
      'subjects.jsonl',
    );
    expect([...csv.subjectOf]).toEqual([...jsonl.subjectOf]);
    expect(csv.lineOf.get(id(3))).toBe(4);
    expect(csv.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(csv.sha256).not.toBe(jsonl.sha256);
  });

  it.each([
    ['a missing column', `sample,owner\n${id(0)},ann\n`, /subjects.csv line 1: .*"subject" column/],
    [
      'a duplicate sample',
      `sample,subject\n${id(0)},ann\n${id(0)},bob\n`,
      /line 3: .*twice \(first on line 2\)/,
    ],
    ['a malformed id', `sample,subject\nseven,ann\n`, /line 2: malformed sample id/],
    ['a short row', `sample,subject\n${id(0)}\n`, /line 2: 1 fields/],
    ['an empty file', '\n', /line 1: the table is empty/],
    [
      'a bad JSON line',
      `{"sample":"${id(0)}","subject":"a"}\n{oops\n`,
      /line 2: not a JSON object/,
    ],
  ])('refuses %s with the line', (_name, text, message) => {
    expect(() => parse(text)).toThrow(message);
  });

  it('refuses samples not in the dataset, naming the line', () => {
    const table = parse(`sample,subject\n${id(1)},ann\n${id(99)},bob\n`);
    expect(() => checkSubjectTable(table, [train])).toThrow(/line 3: sample .*:train:99 is not in/);
    checkSubjectTable(parse(`sample,subject\n${id(1)},ann\n`), [train]);
  });

  it('gives each training sample its subject in the roster', () => {
    const roster = buildRoster(train, parse(`sample,subject\n${id(1)},ann\n`));
    const samples = rosterSamples(roster);
    expect(samples.map((s) => s.subject)).toEqual([null, 'ann', null, null]);
    expect(samples[1]).toMatchObject({
      sampleId: id(1),
      className: train.classes[train.labels[1]!],
    });
  });
});
