/**
 * A Go text/template engine with the Sprig/Helm functions the Lethe chart uses: enough to render
 * deploy/helm/lethe the way `helm template` does, where no helm binary can be installed (see
 * deploy/README.md). It follows Go's rules where they decide what a chart renders to — trim
 * markers, truthiness, variable scope, `and`/`or` short-circuit, map ranges in key order, `eq`
 * refusing to compare different kinds, `%d` refusing floats, numbers from values being float64
 * (so 1000000 prints as 1e+06 unless passed through `int`), field access on nil failing — and it
 * fails loudly on anything outside that subset (an unknown function or construct) rather than
 * guessing.
 */
import { createHash } from 'node:crypto';
import { stringify } from 'yaml';

/** An integer as Go holds it (template literals, `int`, `len`, arithmetic); plain JS numbers are float64. */
export class GoInt {
  constructor(readonly value: number) {
    if (!Number.isInteger(value)) throw new TemplateError(`not an integer: ${value}`);
  }
}

export class TemplateError extends Error {
  override readonly name = 'TemplateError';
}

type Value = unknown;

// ---------------------------------------------------------------------------------------------
// Lexing: text and actions, with trim markers and comments.

interface RawAction {
  kind: 'action';
  body: string;
  line: number;
}
type Piece = { kind: 'text'; text: string } | RawAction;

function lex(source: string, name: string): Piece[] {
  const pieces: Piece[] = [];
  let pos = 0;
  let trimNext = false;
  while (pos < source.length) {
    const open = source.indexOf('{{', pos);
    let text = open === -1 ? source.slice(pos) : source.slice(pos, open);
    if (trimNext) text = text.replace(/^[ \t\r\n]+/, '');
    trimNext = false;
    if (open === -1) {
      pieces.push({ kind: 'text', text });
      break;
    }
    const line = source.slice(0, open).split('\n').length;
    let start = open + 2;
    if (/^-[ \t\r\n]/.test(source.slice(start, start + 2))) {
      text = text.replace(/[ \t\r\n]+$/, '');
      start += 1;
    }
    pieces.push({ kind: 'text', text });
    // Find the closing braces outside string literals.
    let i = start;
    let close = -1;
    while (i < source.length) {
      const c = source[i]!;
      if (c === '"' || c === '`') {
        const end = findStringEnd(source, i);
        if (end === -1) throw new TemplateError(`${name}:${line}: unterminated string`);
        i = end + 1;
        continue;
      }
      if (source.startsWith('}}', i)) {
        close = i;
        break;
      }
      i++;
    }
    if (close === -1) throw new TemplateError(`${name}:${line}: unclosed action`);
    let body = source.slice(start, close);
    if (/[ \t\r\n]-$/.test(body)) {
      body = body.slice(0, -1);
      trimNext = true;
    }
    pos = close + 2;
    const trimmed = body.trim();
    if (trimmed.startsWith('/*')) {
      if (!trimmed.endsWith('*/')) throw new TemplateError(`${name}:${line}: unclosed comment`);
      continue;
    }
    pieces.push({ kind: 'action', body: trimmed, line });
  }
  return pieces;
}

function findStringEnd(s: string, start: number): number {
  const quote = s[start];
  for (let i = start + 1; i < s.length; i++) {
    if (quote === '"' && s[i] === '\\') {
      i++;
      continue;
    }
    if (s[i] === quote) return i;
  }
  return -1;
}

// ---------------------------------------------------------------------------------------------
// Expressions: pipelines of commands.

type Arg =
  | { t: 'field'; base: 'dot' | { variable: string } | { pipe: Pipeline }; fields: string[] }
  | { t: 'ident'; name: string }
  | { t: 'literal'; value: Value };

interface Command {
  args: Arg[];
}

interface Pipeline {
  decl?: { names: string[]; assign: boolean };
  cmds: Command[];
}

interface Token {
  t: 'str' | 'num' | 'ident' | 'field' | 'var' | '(' | ')' | '|' | ':=' | '=' | ',' | 'dot';
  v: string;
  /** Whether whitespace precedes the token: `(x).Field` is a field of x, `(x) .Field` is not. */
  spaced: boolean;
}

function tokenize(body: string, where: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  let spaced = false;
  const push = (t: Token['t'], v: string): void => {
    tokens.push({ t, v, spaced });
    spaced = false;
  };
  while (i < body.length) {
    const c = body[i]!;
    if (/\s/.test(c)) {
      spaced = true;
      i++;
    } else if (c === '"' || c === '`') {
      const end = findStringEnd(body, i);
      if (end === -1) throw new TemplateError(`${where}: unterminated string`);
      const raw = body.slice(i, end + 1);
      push('str', c === '`' ? raw.slice(1, -1) : (JSON.parse(raw) as string));
      i = end + 1;
    } else if ('()|,'.includes(c)) {
      push(c as '(' | ')' | '|' | ',', c);
      i++;
    } else if (body.startsWith(':=', i)) {
      push(':=', ':=');
      i += 2;
    } else if (c === '=') {
      push('=', '=');
      i++;
    } else if (c === '$') {
      const m = /^\$[A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*/.exec(body.slice(i))!;
      push('var', m[0]);
      i += m[0].length;
    } else if (c === '.') {
      const m = /^(\.[A-Za-z_][A-Za-z0-9_]*)+/.exec(body.slice(i));
      if (m) {
        push('field', m[0]);
        i += m[0].length;
      } else {
        push('dot', '.');
        i++;
      }
    } else if (/[-+0-9]/.test(c)) {
      const m = /^[-+]?(0x[0-9a-fA-F]+|[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?)/.exec(body.slice(i));
      if (!m) throw new TemplateError(`${where}: bad number at '${body.slice(i)}'`);
      push('num', m[0]);
      i += m[0].length;
    } else if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(body.slice(i))!;
      push('ident', m[0]);
      i += m[0].length;
    } else {
      throw new TemplateError(`${where}: unexpected '${c}' in '${body}'`);
    }
  }
  return tokens;
}

class ExprParser {
  private pos = 0;
  constructor(
    private readonly tokens: Token[],
    private readonly where: string,
  ) {}

  done(): boolean {
    return this.pos >= this.tokens.length;
  }

  peek(): Token | undefined {
    return this.tokens[this.pos];
  }

  next(): Token {
    const token = this.tokens[this.pos++];
    if (!token) throw new TemplateError(`${this.where}: unexpected end of action`);
    return token;
  }

  /** A pipeline, optionally `$a := …`, `$a = …` or (in range) `$i, $e := …`. */
  pipeline(allowDecl: boolean, stopAtParen = false): Pipeline {
    let decl: Pipeline['decl'];
    if (allowDecl && this.peek()?.t === 'var') {
      const save = this.pos;
      const names = [this.next().v];
      if (this.peek()?.t === ',') {
        this.next();
        const second = this.next();
        if (second.t !== 'var') throw new TemplateError(`${this.where}: expected a variable`);
        names.push(second.v);
      }
      const op = this.peek();
      if (op && (op.t === ':=' || op.t === '=')) {
        this.next();
        decl = { names, assign: op.t === '=' };
      } else {
        this.pos = save;
      }
    }
    const cmds: Command[] = [];
    for (;;) {
      cmds.push(this.command(stopAtParen));
      const token = this.peek();
      if (token?.t === '|') {
        this.next();
        continue;
      }
      break;
    }
    return decl ? { decl, cmds } : { cmds };
  }

  private command(stopAtParen: boolean): Command {
    const args: Arg[] = [];
    for (;;) {
      const token = this.peek();
      if (!token || token.t === '|' || (token.t === ')' && stopAtParen)) break;
      if (token.t === ')') throw new TemplateError(`${this.where}: unexpected ')'`);
      args.push(this.operand());
    }
    if (args.length === 0) throw new TemplateError(`${this.where}: empty command`);
    return { args };
  }

  private operand(): Arg {
    const token = this.next();
    switch (token.t) {
      case 'str':
        return { t: 'literal', value: token.v };
      case 'num':
        return { t: 'literal', value: parseNumber(token.v) };
      case 'dot':
        return { t: 'field', base: 'dot', fields: [] };
      case 'field':
        return { t: 'field', base: 'dot', fields: token.v.slice(1).split('.') };
      case 'var': {
        const [name, ...fields] = token.v.split('.');
        return { t: 'field', base: { variable: name! }, fields };
      }
      case 'ident':
        if (token.v === 'true' || token.v === 'false') {
          return { t: 'literal', value: token.v === 'true' };
        }
        if (token.v === 'nil') return { t: 'literal', value: null };
        return { t: 'ident', name: token.v };
      case '(': {
        const pipe = this.pipeline(false, true);
        if (this.next().t !== ')') throw new TemplateError(`${this.where}: expected ')'`);
        const after = this.peek();
        if (after?.t === 'field' && !after.spaced) {
          this.next();
          return { t: 'field', base: { pipe }, fields: after.v.slice(1).split('.') };
        }
        return { t: 'field', base: { pipe }, fields: [] };
      }
      default:
        throw new TemplateError(`${this.where}: unexpected '${token.v}'`);
    }
  }
}

function parseNumber(text: string): Value {
  if (/^[-+]?(0x[0-9a-fA-F]+|[0-9]+)$/.test(text)) return new GoInt(Number(text));
  return Number(text);
}

// ---------------------------------------------------------------------------------------------
// Parsing: the tree of control structures.

type Node =
  | { t: 'text'; text: string }
  | { t: 'action'; pipe: Pipeline; where: string }
  | { t: 'if'; branches: { pipe: Pipeline; body: Node[] }[]; otherwise: Node[]; where: string }
  | { t: 'range'; pipe: Pipeline; body: Node[]; otherwise: Node[]; where: string }
  | { t: 'with'; pipe: Pipeline; body: Node[]; otherwise: Node[]; where: string }
  | { t: 'template'; name: string; pipe?: Pipeline; where: string };

class TreeParser {
  private i = 0;
  constructor(
    private readonly pieces: Piece[],
    private readonly name: string,
    private readonly defines: Map<string, Node[]>,
  ) {}

  parseAll(): Node[] {
    const { nodes, end } = this.list();
    if (end !== undefined)
      throw new TemplateError(`${this.name}:${end.line}: unexpected {{${end.body}}}`);
    return nodes;
  }

  /** Nodes until {{end}}, {{else…}} or the end of input (returned as `end`). */
  private list(): { nodes: Node[]; end?: RawAction } {
    const nodes: Node[] = [];
    while (this.i < this.pieces.length) {
      const piece = this.pieces[this.i++]!;
      if (piece.kind === 'text') {
        if (piece.text !== '') nodes.push({ t: 'text', text: piece.text });
        continue;
      }
      const where = `${this.name}:${piece.line}`;
      const word = /^[a-z]+/.exec(piece.body)?.[0] ?? '';
      const rest = piece.body.slice(word.length);
      if (word === 'end' || word === 'else') return { nodes, end: piece };
      if (word === 'if' || word === 'with') {
        nodes.push(this.conditional(word, rest, where));
      } else if (word === 'range') {
        const pipe = expr(rest, where, true);
        const { body, otherwise } = this.bodyAndElse(where, 'range');
        nodes.push({ t: 'range', pipe, body, otherwise, where });
      } else if (word === 'define') {
        const name = expr(rest, where, false).cmds[0]!.args[0]!;
        if (name.t !== 'literal' || typeof name.value !== 'string') {
          throw new TemplateError(`${where}: define needs a string name`);
        }
        const { nodes: body, end } = this.list();
        if (end?.body !== 'end') throw new TemplateError(`${where}: define without {{end}}`);
        this.defines.set(name.value, body);
      } else if (word === 'template') {
        const p = new ExprParser(tokenize(rest, where), where);
        const nameToken = p.next();
        if (nameToken.t !== 'str')
          throw new TemplateError(`${where}: template needs a string name`);
        const pipe = p.done() ? undefined : p.pipeline(false);
        nodes.push(
          pipe
            ? { t: 'template', name: nameToken.v, pipe, where }
            : { t: 'template', name: nameToken.v, where },
        );
      } else if (['block', 'break', 'continue'].includes(word) && /^(\s|$)/.test(rest)) {
        throw new TemplateError(`${where}: {{${word}}} is not supported by this renderer`);
      } else {
        nodes.push({ t: 'action', pipe: expr(piece.body, where, true), where });
      }
    }
    return { nodes };
  }

  private conditional(word: 'if' | 'with', rest: string, where: string): Node {
    const branches = [{ pipe: expr(rest, where, word === 'with'), body: [] as Node[] }];
    let otherwise: Node[] = [];
    for (;;) {
      const { nodes, end } = this.list();
      branches[branches.length - 1]!.body = nodes;
      if (!end) throw new TemplateError(`${where}: {{${word}}} without {{end}}`);
      if (end.body === 'end') break;
      const elseIf = new RegExp(`^else\\s+${word}\\s`).exec(end.body);
      if (elseIf) {
        branches.push({ pipe: expr(end.body.slice(elseIf[0].length), where, false), body: [] });
        continue;
      }
      if (end.body !== 'else') throw new TemplateError(`${where}: unexpected {{${end.body}}}`);
      const tail = this.list();
      if (tail.end?.body !== 'end') throw new TemplateError(`${where}: {{else}} without {{end}}`);
      otherwise = tail.nodes;
      break;
    }
    if (word === 'with') {
      if (branches.length > 1) throw new TemplateError(`${where}: {{else with}} is not supported`);
      return { t: 'with', pipe: branches[0]!.pipe, body: branches[0]!.body, otherwise, where };
    }
    return { t: 'if', branches, otherwise, where };
  }

  private bodyAndElse(where: string, word: string): { body: Node[]; otherwise: Node[] } {
    const { nodes, end } = this.list();
    if (!end) throw new TemplateError(`${where}: {{${word}}} without {{end}}`);
    if (end.body === 'end') return { body: nodes, otherwise: [] };
    if (end.body !== 'else') throw new TemplateError(`${where}: unexpected {{${end.body}}}`);
    const tail = this.list();
    if (tail.end?.body !== 'end') throw new TemplateError(`${where}: {{else}} without {{end}}`);
    return { body: nodes, otherwise: tail.nodes };
  }
}

function expr(body: string, where: string, allowDecl: boolean): Pipeline {
  const parser = new ExprParser(tokenize(body, where), where);
  const pipe = parser.pipeline(allowDecl);
  if (!parser.done()) throw new TemplateError(`${where}: unexpected '${parser.peek()!.v}'`);
  return pipe;
}

// ---------------------------------------------------------------------------------------------
// Values as Go sees them.

const isMap = (v: Value): v is Record<string, Value> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof GoInt);

function truth(v: Value): boolean {
  if (v === null || v === undefined) return false;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number') return v !== 0;
  if (v instanceof GoInt) return v.value !== 0;
  if (typeof v === 'string') return v.length > 0;
  if (Array.isArray(v)) return v.length > 0;
  if (isMap(v)) return Object.keys(v).length > 0;
  return true;
}

/**
 * Go's %v of a float64 (text/template prints numbers from values this way):
 * strconv.FormatFloat(f, 'g', -1, 64), i.e. the shortest round-trip digits, in exponent form
 * when the decimal exponent is below -4 or at least 6 — so 1000000 prints as 1e+06.
 */
function formatFloat(f: number): string {
  if (Number.isNaN(f)) return 'NaN';
  if (!Number.isFinite(f)) return f > 0 ? '+Inf' : '-Inf';
  if (f === 0) return Object.is(f, -0) ? '-0' : '0';
  const [mantissa, e] = f.toExponential().split('e') as [string, string];
  const exp = Number(e);
  if (exp < -4 || exp >= 6) {
    return `${mantissa}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  }
  return String(f);
}

/** fmt's %v as text/template prints a value; Helm turns a missing value into "". */
function printValue(v: Value, where: string): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'boolean') return String(v);
  if (v instanceof GoInt) return String(v.value);
  if (typeof v === 'number') return formatFloat(v);
  throw new TemplateError(
    `${where}: printing a ${Array.isArray(v) ? 'list' : 'map'} (${JSON.stringify(v)}) is almost certainly a bug`,
  );
}

function kindOf(v: Value): string {
  if (v === null || v === undefined) return 'invalid';
  if (v instanceof GoInt) return 'int';
  if (typeof v === 'number') return 'float64';
  if (typeof v === 'string') return 'string';
  if (typeof v === 'boolean') return 'bool';
  if (Array.isArray(v)) return 'slice';
  return 'map';
}

function numeric(v: Value): number {
  return v instanceof GoInt ? v.value : (v as number);
}

function compareBasic(a: Value, b: Value, op: string, where: string): boolean {
  const ka = kindOf(a);
  const kb = kindOf(b);
  if (ka !== kb) {
    if (op === 'eq' && (ka === 'invalid' || kb === 'invalid')) return false;
    throw new TemplateError(`${where}: ${op}: incompatible types for comparison (${ka} and ${kb})`);
  }
  if (ka === 'slice' || ka === 'map' || (ka === 'bool' && op !== 'eq')) {
    throw new TemplateError(`${where}: ${op}: invalid type for comparison (${ka})`);
  }
  const x = ka === 'int' || ka === 'float64' ? numeric(a) : (a as string | boolean);
  const y = kb === 'int' || kb === 'float64' ? numeric(b) : (b as string | boolean);
  switch (op) {
    case 'eq':
      return x === y;
    case 'lt':
      return x < y;
    case 'le':
      return x <= y;
    case 'gt':
      return x > y;
    default:
      return x >= y;
  }
}

/** cast.ToInt64 as Sprig's int/add/… use it. */
function toInt(v: Value): number {
  if (v instanceof GoInt) return v.value;
  if (typeof v === 'number') return Math.trunc(v);
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'string') {
    const n = Number(v.trim());
    return v.trim() !== '' && Number.isInteger(n) ? n : 0;
  }
  return 0;
}

/** Go's %q for the strings here (ASCII and UTF-8 text). */
function goQuote(s: string): string {
  return JSON.stringify(s)
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

function toPlain(v: Value): unknown {
  if (v instanceof GoInt) return v.value;
  if (Array.isArray(v)) return v.map(toPlain);
  if (isMap(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toPlain(x)]));
  return v;
}

/** Helm's toYaml: sigs.k8s.io/yaml (keys sorted, block style), trailing newline trimmed. */
export function toYaml(v: Value): string {
  const text = stringify(toPlain(v) ?? null, {
    sortMapEntries: true,
    indentSeq: false,
    lineWidth: 0,
    minContentWidth: 0,
    version: '1.1',
  });
  return text.replace(/\n$/, '');
}

function sprintf(format: string, args: Value[], where: string): string {
  let n = 0;
  return format.replace(
    /%([-+# 0]*)(\d*)(\.\d+)?([%a-zA-Z])/g,
    (whole, _flags, _width, _prec, verb: string) => {
      if (verb === '%') return '%';
      if (n >= args.length) return `%!${verb}(MISSING)`;
      const arg = args[n++];
      switch (verb) {
        case 's':
        case 'v':
          if (verb === 's' && typeof arg !== 'string' && !(arg === null || arg === undefined)) {
            if (typeof arg === 'number' || arg instanceof GoInt || typeof arg === 'boolean') {
              return `%!s(${kindOf(arg)}=${printValue(arg, where)})`;
            }
          }
          return arg === null || arg === undefined ? '<nil>' : printValue(arg, where);
        case 'd':
          if (arg instanceof GoInt) return String(arg.value);
          return `%!d(${kindOf(arg)}=${printValue(arg, where)})`;
        case 'q':
          return goQuote(typeof arg === 'string' ? arg : printValue(arg, where));
        default:
          throw new TemplateError(
            `${where}: printf verb ${whole} is not supported by this renderer`,
          );
      }
    },
  );
}

// ---------------------------------------------------------------------------------------------
// Execution.

interface Scope {
  vars: Map<string, Value>[];
}

type Fn = (args: Value[], where: string) => Value;

export class Engine {
  private readonly defines = new Map<string, Node[]>();
  private readonly files = new Map<string, Node[]>();
  private depth = 0;

  /** Parses a file; its {{define}}s become visible to every file. */
  add(name: string, source: string): void {
    this.files.set(name, new TreeParser(lex(source, name), name, this.defines).parseAll());
  }

  /** Executes a file with `data` as dot and $. */
  render(name: string, data: Value): string {
    const nodes = this.files.get(name);
    if (!nodes) throw new TemplateError(`no template ${name}`);
    return this.exec(nodes, data, { vars: [new Map([['$', data]])] });
  }

  private exec(nodes: Node[], dot: Value, scope: Scope): string {
    let out = '';
    for (const node of nodes) {
      switch (node.t) {
        case 'text':
          out += node.text;
          break;
        case 'action': {
          const value = this.pipeline(node.pipe, dot, scope, node.where);
          if (!node.pipe.decl) out += printValue(value, node.where);
          break;
        }
        case 'if': {
          let done = false;
          for (const branch of node.branches) {
            if (truth(this.pipeline(branch.pipe, dot, scope, node.where))) {
              out += this.nested(branch.body, dot, scope);
              done = true;
              break;
            }
          }
          if (!done) out += this.nested(node.otherwise, dot, scope);
          break;
        }
        case 'with': {
          scope.vars.push(new Map());
          const value = this.pipeline(node.pipe, dot, scope, node.where);
          out += truth(value)
            ? this.exec(node.body, value, scope)
            : this.exec(node.otherwise, dot, scope);
          scope.vars.pop();
          break;
        }
        case 'range':
          out += this.range(node, dot, scope);
          break;
        case 'template': {
          const data = node.pipe ? this.pipeline(node.pipe, dot, scope, node.where) : null;
          out += this.include(node.name, data, node.where);
          break;
        }
      }
    }
    return out;
  }

  private nested(nodes: Node[], dot: Value, scope: Scope): string {
    scope.vars.push(new Map());
    try {
      return this.exec(nodes, dot, scope);
    } finally {
      scope.vars.pop();
    }
  }

  private range(node: Extract<Node, { t: 'range' }>, dot: Value, scope: Scope): string {
    scope.vars.push(new Map());
    try {
      const decl = node.pipe.decl;
      const collection = this.pipeline({ cmds: node.pipe.cmds }, dot, scope, node.where);
      let entries: [Value, Value][];
      if (collection === null || collection === undefined) entries = [];
      else if (Array.isArray(collection)) entries = collection.map((v, i) => [new GoInt(i), v]);
      else if (collection instanceof GoInt) {
        entries = Array.from({ length: Math.max(0, collection.value) }, (_, i) => [
          new GoInt(i),
          new GoInt(i),
        ]);
      } else if (isMap(collection)) {
        entries = Object.keys(collection)
          .sort()
          .map((k) => [k, collection[k]]);
      } else {
        throw new TemplateError(`${node.where}: range can't iterate over ${kindOf(collection)}`);
      }
      if (entries.length === 0) return this.exec(node.otherwise, dot, scope);
      let out = '';
      for (const [key, value] of entries) {
        const vars = new Map<string, Value>();
        if (decl?.names.length === 1) vars.set(decl.names[0]!, value);
        if (decl?.names.length === 2) {
          vars.set(decl.names[0]!, key);
          vars.set(decl.names[1]!, value);
        }
        scope.vars.push(vars);
        out += this.exec(node.body, value, scope);
        scope.vars.pop();
      }
      return out;
    } finally {
      scope.vars.pop();
    }
  }

  private include(name: string, data: Value, where: string): string {
    const nodes = this.defines.get(name);
    if (!nodes) throw new TemplateError(`${where}: no template named "${name}"`);
    if (++this.depth > 100) throw new TemplateError(`${where}: include nested too deeply`);
    try {
      return this.exec(nodes, data, { vars: [new Map([['$', data]])] });
    } finally {
      this.depth--;
    }
  }

  private pipeline(pipe: Pipeline, dot: Value, scope: Scope, where: string): Value {
    let value: Value = undefined;
    let first = true;
    for (const cmd of pipe.cmds) {
      value = this.command(cmd, dot, scope, where, first ? [] : [value]);
      first = false;
    }
    if (pipe.decl) {
      const name = pipe.decl.names[0]!;
      if (pipe.decl.assign) {
        const frame = [...scope.vars].reverse().find((vars) => vars.has(name));
        if (!frame) throw new TemplateError(`${where}: undefined variable ${name}`);
        frame.set(name, value);
      } else {
        scope.vars[scope.vars.length - 1]!.set(name, value);
      }
    }
    return value;
  }

  private command(cmd: Command, dot: Value, scope: Scope, where: string, piped: Value[]): Value {
    const [head, ...rest] = cmd.args;
    if (head!.t === 'ident') {
      const name = head!.name;
      if (name === 'and' || name === 'or') {
        const thunks = [
          ...rest.map((arg) => () => this.arg(arg, dot, scope, where)),
          ...piped.map((v) => () => v),
        ];
        if (thunks.length === 0) throw new TemplateError(`${where}: ${name} needs arguments`);
        let last: Value;
        for (const thunk of thunks) {
          last = thunk();
          if (name === 'and' ? !truth(last) : truth(last)) return last;
        }
        return last;
      }
      const fn = this.fn(name, where);
      const args = [...rest.map((arg) => this.arg(arg, dot, scope, where)), ...piped];
      return fn(args, where);
    }
    const value = this.arg(head!, dot, scope, where);
    // A method of the top-level object, as Helm's `.Files.Get "path"`.
    if (typeof value === 'function') {
      const args = [...rest.map((arg) => this.arg(arg, dot, scope, where)), ...piped];
      return (value as Fn)(args, where);
    }
    if (rest.length > 0 || piped.length > 0) {
      throw new TemplateError(`${where}: can't give arguments to a non-function`);
    }
    return value;
  }

  private arg(arg: Arg, dot: Value, scope: Scope, where: string): Value {
    switch (arg.t) {
      case 'literal':
        return arg.value;
      case 'ident':
        // A function used as an operand: call it without arguments.
        return this.fn(arg.name, where)([], where);
      case 'field': {
        let value: Value;
        if (arg.base === 'dot') value = dot;
        else if ('variable' in arg.base) {
          const name = arg.base.variable;
          const frame = [...scope.vars].reverse().find((vars) => vars.has(name));
          if (!frame) throw new TemplateError(`${where}: undefined variable ${name}`);
          value = frame.get(name);
        } else value = this.pipeline(arg.base.pipe, dot, scope, where);
        for (const field of arg.fields) {
          if (value === null || value === undefined) {
            throw new TemplateError(`${where}: nil pointer evaluating interface {}.${field}`);
          }
          if (!isMap(value)) {
            throw new TemplateError(
              `${where}: can't evaluate field ${field} in type ${kindOf(value)}`,
            );
          }
          value = Object.prototype.hasOwnProperty.call(value, field) ? value[field] : undefined;
        }
        return value;
      }
    }
  }

  private fn(name: string, where: string): Fn {
    const fn = this.functions()[name];
    if (!fn)
      throw new TemplateError(
        `${where}: function "${name}" not defined (or not supported by this renderer)`,
      );
    return fn;
  }

  private functions(): Record<string, Fn> {
    const arity = (n: number, name: string, args: Value[], where: string): void => {
      if (args.length !== n) {
        throw new TemplateError(
          `${where}: wrong number of args for ${name}: want ${n} got ${args.length}`,
        );
      }
    };
    const str = (v: Value, where: string): string =>
      typeof v === 'string' ? v : printValue(v, where);
    const empty = (v: Value): boolean => !truth(v);
    return {
      include: (args, where) => {
        arity(2, 'include', args, where);
        return this.include(str(args[0], where), args[1], where);
      },
      required: (args, where) => {
        arity(2, 'required', args, where);
        const v = args[1];
        if (v === null || v === undefined || v === '')
          throw new TemplateError(`${where}: ${str(args[0], where)}`);
        return v;
      },
      fail: (args, where) => {
        throw new TemplateError(`${where}: ${str(args[0], where)}`);
      },
      default: (args, where) => {
        if (args.length === 1) return args[0];
        arity(2, 'default', args, where);
        return empty(args[1]) ? args[0] : args[1];
      },
      empty: (args) => empty(args[0]),
      coalesce: (args) => args.find((v) => !empty(v)),
      ternary: (args, where) => {
        arity(3, 'ternary', args, where);
        return truth(args[2]) ? args[0] : args[1];
      },
      not: (args, where) => {
        arity(1, 'not', args, where);
        return !truth(args[0]);
      },
      eq: (args, where) => {
        if (args.length < 2) throw new TemplateError(`${where}: eq needs two arguments`);
        return args.slice(1).some((b) => compareBasic(args[0], b, 'eq', where));
      },
      ne: (args, where) => {
        arity(2, 'ne', args, where);
        return !compareBasic(args[0], args[1], 'eq', where);
      },
      lt: (args, where) => compareBasic(args[0], args[1], 'lt', where),
      le: (args, where) => compareBasic(args[0], args[1], 'le', where),
      gt: (args, where) => compareBasic(args[0], args[1], 'gt', where),
      ge: (args, where) => compareBasic(args[0], args[1], 'ge', where),
      len: (args, where) => {
        const v = args[0];
        if (typeof v === 'string' || Array.isArray(v)) return new GoInt(v.length);
        if (isMap(v)) return new GoInt(Object.keys(v).length);
        throw new TemplateError(`${where}: len of ${kindOf(v)}`);
      },
      int: (args) => new GoInt(toInt(args[0])),
      int64: (args) => new GoInt(toInt(args[0])),
      float64: (args) => Number(numeric(args[0] ?? 0)),
      toString: (args: Value[], where: string) => str(args[0], where),
      add: (args) => new GoInt(args.reduce<number>((sum, v) => sum + toInt(v), 0)),
      sub: (args) => new GoInt(toInt(args[0]) - toInt(args[1])),
      mul: (args) => new GoInt(args.reduce<number>((p, v) => p * toInt(v), 1)),
      div: (args, where) => {
        const d = toInt(args[1]);
        if (d === 0) throw new TemplateError(`${where}: integer divide by zero`);
        return new GoInt(Math.trunc(toInt(args[0]) / d));
      },
      mod: (args) => new GoInt(toInt(args[0]) % toInt(args[1])),
      max: (args) => new GoInt(Math.max(...args.map(toInt))),
      min: (args) => new GoInt(Math.min(...args.map(toInt))),
      printf: (args, where) => sprintf(str(args[0], where), args.slice(1), where),
      print: (args, where) =>
        args
          .map((v, i) => {
            const s = v === null || v === undefined ? '<nil>' : str(v, where);
            const spaced = i > 0 && typeof v !== 'string' && typeof args[i - 1] !== 'string';
            return spaced ? ` ${s}` : s;
          })
          .join(''),
      quote: (args, where) =>
        args
          .filter((v) => v !== null && v !== undefined)
          .map((v) => goQuote(str(v, where)))
          .join(' '),
      squote: (args, where) =>
        args
          .filter((v) => v !== null && v !== undefined)
          .map((v) => `'${str(v, where)}'`)
          .join(' '),
      trunc: (args, where) => {
        const n = toInt(args[0]);
        const s = str(args[1], where);
        if (n < 0 && s.length + n > 0) return s.slice(s.length + n);
        if (n >= 0 && s.length > n) return s.slice(0, n);
        return s;
      },
      trim: (args, where) => str(args[0], where).trim(),
      trimSuffix: (args, where) => {
        const [suffix, s] = [str(args[0], where), str(args[1], where)];
        return suffix !== '' && s.endsWith(suffix) ? s.slice(0, -suffix.length) : s;
      },
      trimPrefix: (args, where) => {
        const [prefix, s] = [str(args[0], where), str(args[1], where)];
        return s.startsWith(prefix) ? s.slice(prefix.length) : s;
      },
      replace: (args, where) =>
        str(args[2], where).split(str(args[0], where)).join(str(args[1], where)),
      lower: (args, where) => str(args[0], where).toLowerCase(),
      upper: (args, where) => str(args[0], where).toUpperCase(),
      contains: (args, where) => str(args[1], where).includes(str(args[0], where)),
      hasPrefix: (args, where) => str(args[1], where).startsWith(str(args[0], where)),
      hasSuffix: (args, where) => str(args[1], where).endsWith(str(args[0], where)),
      join: (args, where) => {
        const list = args[1];
        if (!Array.isArray(list)) throw new TemplateError(`${where}: join needs a list`);
        return list.map((v) => str(v, where)).join(str(args[0], where));
      },
      indent: (args, where) => {
        const pad = ' '.repeat(toInt(args[0]));
        return pad + str(args[1], where).split('\n').join(`\n${pad}`);
      },
      nindent: (args, where) => {
        const pad = ' '.repeat(toInt(args[0]));
        return `\n${pad}${str(args[1], where).split('\n').join(`\n${pad}`)}`;
      },
      toYaml: (args) => toYaml(args[0]),
      toJson: (args) => JSON.stringify(toPlain(args[0]) ?? null),
      b64enc: (args, where) => Buffer.from(str(args[0], where), 'utf8').toString('base64'),
      sha256sum: (args, where) => createHash('sha256').update(str(args[0], where)).digest('hex'),
      list: (args) => [...args],
      dict: (args, where) => {
        if (args.length % 2 !== 0) throw new TemplateError(`${where}: dict needs key/value pairs`);
        const d: Record<string, Value> = {};
        for (let i = 0; i < args.length; i += 2) d[str(args[i], where)] = args[i + 1];
        return d;
      },
      set: (args, where) => {
        const d = args[0];
        if (!isMap(d)) throw new TemplateError(`${where}: set needs a dict`);
        d[str(args[1], where)] = args[2];
        return d;
      },
      hasKey: (args, where) => {
        const d = args[0];
        if (!isMap(d)) throw new TemplateError(`${where}: hasKey needs a dict`);
        return Object.prototype.hasOwnProperty.call(d, str(args[1], where));
      },
      deepCopy: (args) => structuredCloneValue(args[0]),
      kindIs: (args, where) => {
        const kind = kindOf(args[1]);
        const names: Record<string, string> = {
          int: 'int',
          float64: 'float64',
          string: 'string',
          bool: 'bool',
          slice: 'slice',
          map: 'map',
          invalid: 'invalid',
        };
        return str(args[0], where) === names[kind];
      },
    };
  }
}

function structuredCloneValue(v: Value): Value {
  if (v instanceof GoInt) return new GoInt(v.value);
  if (Array.isArray(v)) return v.map(structuredCloneValue);
  if (isMap(v))
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, structuredCloneValue(x)]));
  return v;
}
