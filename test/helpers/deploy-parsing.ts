/**
 * Readers for the deployment files, shared by test/deploy/*.test.ts:
 *
 * - `parseYamlSubset`: no YAML library is installed, so the YAML files (docker-compose.yml,
 *   Prometheus' configuration and alert rules, Grafana's provisioning) are kept in a small subset
 *   (block maps and lists, plain / double-quoted / single-quoted scalars, one-line flow lists, `{}`;
 *   no anchors, no multi-line strings), and this reader refuses anything else.
 * - `queryParts`: the metric selectors, label matchers and grouping labels of a PromQL expression.
 * - `expandGrafanaVariables`: Grafana's variables replaced the way Grafana would before querying.
 */

// ---------------------------------------------------------------------------------------------
// A reader for the YAML subset the deployment files are written in
// ---------------------------------------------------------------------------------------------

export type Yaml = string | number | boolean | null | Yaml[] | { [key: string]: Yaml };
export type YamlMap = { [key: string]: Yaml };

interface YamlLine {
  indent: number;
  text: string;
  no: number;
}

/** Cuts a `#` comment that is outside quotes and starts the line or follows whitespace. */
function stripComment(line: string): string {
  let quote: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = null;
    } else if (c === '"' || c === "'") {
      quote = c;
    } else if (c === '#' && (i === 0 || /\s/.test(line[i - 1]!))) {
      return line.slice(0, i);
    }
  }
  return line;
}

/** Splits `a, "b, c", d` at top-level commas. */
function splitFlow(inner: string, where: string): string[] {
  const items: string[] = [];
  let quote: string | null = null;
  let start = 0;
  for (let i = 0; i < inner.length; i++) {
    const c = inner[i]!;
    if (quote) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = null;
    } else if (c === '"' || c === "'") {
      quote = c;
    } else if (c === '[' || c === '{') {
      throw new Error(`${where}: nested flow collections are not supported`);
    } else if (c === ',') {
      items.push(inner.slice(start, i));
      start = i + 1;
    }
  }
  if (quote) throw new Error(`${where}: unterminated quote`);
  const last = inner.slice(start);
  if (last.trim() !== '' || items.length > 0) items.push(last);
  return items.map((item) => item.trim());
}

function parseScalar(raw: string, where: string): Yaml {
  const text = raw.trim();
  if (text.startsWith('"')) {
    if (!text.endsWith('"') || text.length < 2) throw new Error(`${where}: unterminated double-quoted string`);
    return JSON.parse(text) as string;
  }
  if (text.startsWith("'")) {
    if (!text.endsWith("'") || text.length < 2) throw new Error(`${where}: unterminated single-quoted string`);
    return text.slice(1, -1).replaceAll("''", "'");
  }
  if (text.startsWith('[')) {
    if (!text.endsWith(']')) throw new Error(`${where}: a flow list must end on its line`);
    return splitFlow(text.slice(1, -1), where).map((item) => parseScalar(item, where));
  }
  if (text === '{}') return {};
  if (/^[&*!|>{%@`]/.test(text)) throw new Error(`${where}: unsupported YAML (${text.slice(0, 20)})`);
  if (text === '' || text === '~' || text === 'null') return null;
  if (text === 'true') return true;
  if (text === 'false') return false;
  if (/^-?\d+(\.\d+)?$/.test(text)) return Number(text);
  return text;
}

/** Splits `key: value` (key plain or quoted); `undefined` when the line is not a mapping entry. */
function splitKey(text: string): { key: string; rest: string } | undefined {
  const quoted = /^("(?:[^"\\]|\\.)*"|'(?:[^']|'')*')\s*:(?:\s+|$)/.exec(text);
  if (quoted) return { key: parseScalar(quoted[1]!, 'key') as string, rest: text.slice(quoted[0].length) };
  const plain = /^([^\s"'#:[\]{},-][^:#]*?|-[^\s:#][^:#]*?)\s*:(?:\s+|$)/.exec(text);
  if (plain) return { key: plain[1]!, rest: text.slice(plain[0].length) };
  return undefined;
}

/**
 * Parses the YAML subset described at the top of this file. Throws, naming the line, on anything
 * outside it.
 */
export function parseYamlSubset(source: string, name = 'yaml'): Yaml {
  const lines: YamlLine[] = [];
  source.split(/\r?\n/).forEach((raw, index) => {
    if (/^\s*\t/.test(raw)) throw new Error(`${name}:${index + 1}: tabs in indentation`);
    const text = stripComment(raw).trimEnd();
    if (text.trim() === '') return;
    if (text.trim() === '---' || text.trim() === '...') throw new Error(`${name}:${index + 1}: document markers are not supported`);
    lines.push({ indent: text.length - text.trimStart().length, text: text.trimStart(), no: index + 1 });
  });
  let pos = 0;

  const where = (line: YamlLine): string => `${name}:${line.no}`;

  function parseBlock(indent: number): Yaml {
    const first = lines[pos]!;
    return first.text === '-' || first.text.startsWith('- ') ? parseSequence(indent) : parseMapping(indent);
  }

  /** The value of `key:` whose rest is empty: a nested block, or null. */
  function nested(parentIndent: number): Yaml {
    const next = lines[pos];
    if (next === undefined || next.indent <= parentIndent) return null;
    return parseBlock(next.indent);
  }

  function parseMapping(indent: number): YamlMap {
    const map: YamlMap = {};
    while (pos < lines.length) {
      const line = lines[pos]!;
      if (line.indent < indent) break;
      if (line.indent > indent) throw new Error(`${where(line)}: unexpected indentation`);
      if (line.text.startsWith('- ')) throw new Error(`${where(line)}: a list item where a mapping entry was expected`);
      const entry = splitKey(line.text);
      if (!entry) throw new Error(`${where(line)}: expected "key: value", got ${JSON.stringify(line.text)}`);
      if (Object.hasOwn(map, entry.key)) throw new Error(`${where(line)}: duplicate key ${entry.key}`);
      pos++;
      map[entry.key] = entry.rest.trim() === '' ? nested(indent) : parseScalar(entry.rest, where(line));
    }
    return map;
  }

  function parseSequence(indent: number): Yaml[] {
    const items: Yaml[] = [];
    while (pos < lines.length) {
      const line = lines[pos]!;
      if (line.indent < indent) break;
      if (line.indent > indent) throw new Error(`${where(line)}: unexpected indentation`);
      if (!(line.text === '-' || line.text.startsWith('- '))) break;
      const rest = line.text.slice(1).trimStart();
      if (rest === '') {
        pos++;
        items.push(nested(indent));
      } else if (splitKey(rest) && !/^["'[]/.test(rest)) {
        // `- key: value` starts a mapping whose entries are indented like `key`.
        lines[pos] = { indent: indent + (line.text.length - rest.length), text: rest, no: line.no };
        items.push(parseMapping(lines[pos]!.indent));
      } else {
        pos++;
        items.push(parseScalar(rest, where(line)));
      }
    }
    return items;
  }

  if (lines.length === 0) return null;
  const result = parseBlock(lines[0]!.indent);
  if (pos < lines.length) throw new Error(`${where(lines[pos]!)}: unexpected content`);
  return result;
}

// ---------------------------------------------------------------------------------------------
// A PromQL reader: metric selectors, their label matchers, and grouping labels
// ---------------------------------------------------------------------------------------------

export interface Matcher {
  label: string;
  op: string;
  value: string;
}
export interface Selector {
  metric: string;
  matchers: Matcher[];
}
export interface QueryParts {
  selectors: Selector[];
  groupingLabels: string[];
}

const PROMQL_KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'inf', 'nan', 'atan2']);
const GROUPING_KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
/** Aggregation operators, which may be followed by `by (…)` or `without (…)` before their `(`. */
const AGGREGATIONS = new Set(['sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count', 'count_values', 'bottomk', 'topk', 'quantile', 'limitk', 'limit_ratio']);

/** Grafana's variables, replaced the way Grafana would before sending the query. */
export function expandGrafanaVariables(expr: string): string {
  return expr
    .replaceAll('$__rate_interval', '1m')
    .replaceAll('$__interval', '15s')
    .replaceAll('$__range', '1h')
    .replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, '.*');
}

function readString(expr: string, start: number): { value: string; end: number } {
  const quote = expr[start]!;
  let value = '';
  let i = start + 1;
  while (i < expr.length && expr[i] !== quote) {
    if (expr[i] === '\\' && quote !== '`') {
      value += expr[i + 1] ?? '';
      i += 2;
    } else {
      value += expr[i];
      i++;
    }
  }
  if (i >= expr.length) throw new Error(`unterminated string in ${expr}`);
  return { value, end: i + 1 };
}

function readMatchers(expr: string, start: number): { matchers: Matcher[]; end: number } {
  const matchers: Matcher[] = [];
  let i = start + 1;
  for (;;) {
    while (/[\s,]/.test(expr[i] ?? '')) i++;
    if (expr[i] === '}') return { matchers, end: i + 1 };
    const label = /^[A-Za-z_][A-Za-z0-9_]*/.exec(expr.slice(i));
    if (!label) throw new Error(`bad label matcher at ${JSON.stringify(expr.slice(i, i + 20))} in ${expr}`);
    i += label[0].length;
    while (/\s/.test(expr[i] ?? '')) i++;
    const op = /^(=~|!~|!=|=)/.exec(expr.slice(i));
    if (!op) throw new Error(`bad label matcher operator at ${JSON.stringify(expr.slice(i, i + 20))} in ${expr}`);
    i += op[0].length;
    while (/\s/.test(expr[i] ?? '')) i++;
    if (!/["'`]/.test(expr[i] ?? '')) throw new Error(`label matcher without a quoted value in ${expr}`);
    const value = readString(expr, i);
    i = value.end;
    matchers.push({ label: label[0], op: op[0], value: value.value });
  }
}

/** The metric selectors and grouping labels of a PromQL expression (Grafana variables allowed). */
export function queryParts(expr: string): QueryParts {
  const selectors: Selector[] = [];
  const groupingLabels: string[] = [];
  let i = 0;
  while (i < expr.length) {
    const c = expr[i]!;
    if (c === '"' || c === "'" || c === '`') {
      i = readString(expr, i).end;
    } else if (c === '[') {
      const end = expr.indexOf(']', i);
      if (end < 0) throw new Error(`unterminated range in ${expr}`);
      i = end + 1;
    } else if (c === '{') {
      throw new Error(`a selector without a metric name in ${expr}`);
    } else if (/[A-Za-z_:]/.test(c)) {
      const word = /^[A-Za-z_:][A-Za-z0-9_:]*/.exec(expr.slice(i))![0];
      i += word.length;
      let j = i;
      while (/\s/.test(expr[j] ?? '')) j++;
      if (GROUPING_KEYWORDS.has(word) && expr[j] === '(') {
        const end = expr.indexOf(')', j);
        if (end < 0) throw new Error(`unterminated label list in ${expr}`);
        groupingLabels.push(...expr.slice(j + 1, end).split(',').map((s) => s.trim()).filter(Boolean));
        i = end + 1;
      } else if (PROMQL_KEYWORDS.has(word.toLowerCase())) {
        // an operator or modifier
      } else if (expr[j] === '(' || (AGGREGATIONS.has(word) && /^(by|without)\s*\(/.test(expr.slice(j)))) {
        // a function or aggregation
      } else if (expr[j] === '{') {
        const { matchers, end } = readMatchers(expr, j);
        selectors.push({ metric: word, matchers });
        i = end;
      } else {
        selectors.push({ metric: word, matchers: [] });
      }
    } else if (/[0-9.]/.test(c)) {
      i += /^[0-9.eE+-]*[0-9a-zA-Z]*/.exec(expr.slice(i))![0].length || 1;
    } else {
      i++;
    }
  }
  return { selectors, groupingLabels };
}

