import { describe, expect, it } from 'vitest';
import { Engine, GoInt, toYaml } from '../src/go-template';

/** Renders one template string with `data` as dot (and $), like `helm template` would. */
function render(source: string, data: unknown = {}, partials = ''): string {
  const engine = new Engine();
  engine.add('partials.tpl', partials);
  engine.add('t.yaml', source);
  return engine.render('t.yaml', data);
}

// Expected outputs follow Go's text/template and Sprig as Helm 3 runs them.
describe('Go template engine (the subset the chart uses)', () => {
  it('trims whitespace at {{- and -}} and drops comments', () => {
    expect(render('a  \n  {{- "b" -}}  \n c')).toBe('abc');
    expect(render('a {{/* note */}}b')).toBe('a b');
    expect(render('a\n{{- /* note */ -}}\nb')).toBe('ab');
    expect(render('{{-3}}')).toBe('-3'); // "{{-3" is a number, not a trim marker
  });

  it('prints float64 values as Go does, so large numbers need `int`', () => {
    const values = { small: 7070, big: 1000000, frac: 0.5, tiny: 0.00001 };
    expect(render('{{ .small }} {{ .big }} {{ .frac }} {{ .tiny }}', values)).toBe(
      '7070 1e+06 0.5 1e-05',
    );
    expect(render('{{ int .big }} {{ .big | int | quote }}', values)).toBe('1000000 "1000000"');
    expect(render('{{ printf "%d" .small }}', values)).toBe('%!d(float64=7070)');
    expect(render('{{ printf "%d/%s" (int .small) "x" }}', values)).toBe('7070/x');
  });

  it('evaluates truthiness, if/else if/else and with as Go does', () => {
    const t = '{{ if .a }}A{{ else if .b }}B{{ else }}C{{ end }}';
    expect(render(t, { a: 'x' })).toBe('A');
    expect(render(t, { a: '', b: [1] })).toBe('B');
    expect(render(t, { a: 0, b: {} })).toBe('C');
    expect(render('{{ with .m }}{{ .k }}{{ else }}none{{ end }}', { m: { k: 'v' } })).toBe('v');
    expect(render('{{ with .m }}{{ .k }}{{ else }}none{{ end }}', { m: {} })).toBe('none');
  });

  it('ranges over maps in key order, lists with indexes, and scopes variables', () => {
    expect(render('{{ range $k, $v := . }}{{ $k }}={{ $v }};{{ end }}', { b: 2, a: 1 })).toBe(
      'a=1;b=2;',
    );
    expect(render('{{ range $i, $v := .l }}{{ $i }}:{{ $v }} {{ end }}', { l: ['x', 'y'] })).toBe(
      '0:x 1:y ',
    );
    expect(render('{{ range .l }}{{ . }}{{ else }}empty{{ end }}', { l: [] })).toBe('empty');
    expect(render('{{ $x := "a" }}{{ if true }}{{ $x = "b" }}{{ end }}{{ $x }}')).toBe('b');
    expect(() => render('{{ if true }}{{ $y := 1 }}{{ end }}{{ $y }}')).toThrow(
      /undefined variable/,
    );
  });

  it('short-circuits and/or and returns the deciding operand', () => {
    expect(render('{{ or .a "fallback" }}', {})).toBe('fallback');
    expect(render('{{ and .a .a.b }}', {})).toBe('');
    expect(() => render('{{ .a.b }}', {})).toThrow(/nil pointer/);
  });

  it('refuses to compare different kinds, as Go 1.18+ eq does', () => {
    expect(
      render('{{ eq .s "x" }} {{ eq .n 1.5 }} {{ eq .missing "x" }}', { s: 'x', n: 1.5 }),
    ).toBe('true true false');
    expect(() => render('{{ eq .n 1 }}', { n: 1 })).toThrow(/incompatible types/);
  });

  it('implements the Sprig/Helm functions the chart uses', () => {
    const partials = '{{- define "greet" -}}hi {{ .name }}{{- end -}}';
    expect(render('{{ include "greet" (dict "name" "x") | upper }}', {}, partials)).toBe('HI X');
    expect(render('{{ default "d" .v }}|{{ default "d" "" }}|{{ default "d" "v" }}', {})).toBe(
      'd|d|v',
    );
    expect(render('{{ "abcdef" | trunc 3 }} {{ "a-" | trimSuffix "-" }}')).toBe('abc a');
    expect(render('{{ "x" | quote }} {{ "a+b" | replace "+" "_" }}')).toBe('"x" a_b');
    expect(
      render('{{ "s" | b64enc }} {{ contains "ab" "xaby" }} {{ hasPrefix "s3" "s3://" }}'),
    ).toBe('cw== true true');
    expect(render('{{ add (div 10000 1000) 20 }} {{ mul 2 3 }}')).toBe('30 6');
    expect(render(String.raw`x:{{ "a: 1\nb: 2" | nindent 2 }}`)).toBe('x:\n  a: 1\n  b: 2');
    expect(() => render('{{ required "need v" .v }}', {})).toThrow(/need v/);
    expect(() => render('{{ fail "stop" }}')).toThrow(/stop/);
    expect(() => render('{{ nosuchfn 1 }}')).toThrow(/not defined/);
    const d = render('{{ $m := dict "a" 1 }}{{ $_ := set $m "b" 2 }}{{ toYaml $m }}');
    expect(d).toBe('a: 1\nb: 2');
  });

  it('treats "(pipeline).Field" and "(pipeline) .Field" differently', () => {
    const data = { m: { k: 'v' }, s: 'x' };
    expect(render('{{ (dict "k" "v").k }}', data)).toBe('v');
    expect(render('{{ default (print "a") .s }}', data)).toBe('x');
  });

  it('writes YAML like sigs.k8s.io/yaml: sorted keys, no trailing newline', () => {
    expect(toYaml({ b: [1, 'x'], a: { 'nvidia.com/gpu': new GoInt(1) }, c: {} })).toBe(
      'a:\n  nvidia.com/gpu: 1\nb:\n- 1\n- x\nc: {}',
    );
  });
});
