/**
 * Plain-text tables for the admin CLI commands: one header row, columns padded to their widest
 * cell, cells reduced to one line. Machine consumers use `--json` instead.
 */

/** One column: its heading and how to render a row's cell. */
export interface Column<Row> {
  readonly heading: string;
  readonly cell: (row: Row) => string | number | null | undefined;
}

const MAX_CELL = 80;

function clean(value: string | number | null | undefined): string {
  if (value === null || value === undefined) return '-';
  const text = String(value).replace(/\s+/g, ' ').trim();
  return text.length > MAX_CELL ? `${text.slice(0, MAX_CELL - 1)}…` : text;
}

/** Renders rows as an aligned table, ending with a newline. */
export function formatTable<Row>(rows: readonly Row[], columns: readonly Column<Row>[]): string {
  const cells = rows.map((row) => columns.map((column) => clean(column.cell(row))));
  const widths = columns.map((column, i) => Math.max(column.heading.length, ...cells.map((r) => r[i]!.length)));
  const line = (values: readonly string[]) =>
    values
      .map((value, i) => (i === values.length - 1 ? value : value.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.heading)), ...cells.map(line)].join('\n') + '\n';
}
