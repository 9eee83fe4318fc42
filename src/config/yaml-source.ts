import { LineCounter, parseDocument, isNode, visit, type Document } from 'yaml';

/**
 * Most alias expansions a document may make (the yaml library's own default). A few aliases that
 * each expand an anchor holding aliases grow exponentially ("billion laughs",
 * https://en.wikipedia.org/wiki/Billion_laughs_attack); the library refuses past this count.
 */
export const MAX_ALIAS_COUNT = 100;

/**
 * A parsed YAML file that remembers where every node came from, so that any later error
 * (schema, semantic) can name `file:line:column`. Shared by the server config and the rules loader.
 */
export class YamlSource {
  readonly file: string;
  readonly data: unknown;
  /** YAML syntax errors (an alias bomb included), already positioned; when non-empty `data` must not be trusted. */
  readonly syntaxErrors: readonly string[];
  private readonly doc: Document.Parsed;
  private readonly lines: LineCounter;

  constructor(file: string, text: string) {
    this.file = file;
    this.lines = new LineCounter();
    // uniqueKeys: a key written twice is an error, not a silent override.
    this.doc = parseDocument(text, { lineCounter: this.lines, prettyErrors: false, uniqueKeys: true });
    this.syntaxErrors = this.doc.errors.map((e) => {
      const pos = this.lines.linePos(e.pos[0]);
      return `${file}:${pos.line}:${pos.col}: ${firstLine(e.message)}`;
    });
    if (this.syntaxErrors.length > 0) return;
    try {
      this.data = this.doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (err) {
      // The library throws (a ReferenceError) rather than reporting: turn it into a problem like
      // any syntax error, at the first alias, so every entry point prints one positioned line.
      this.syntaxErrors = [`${this.aliasWhere()}: ${firstLine((err as Error).message)}: the aliases expand to more than ${MAX_ALIAS_COUNT} nodes; write the values out`];
    }
  }

  /** `file:line:col` of the first alias (`*name`) in the document, or the file. */
  private aliasWhere(): string {
    let offset: number | undefined;
    visit(this.doc, {
      Alias: (_key, node) => {
        offset = node.range?.[0];
        return visit.BREAK;
      },
    });
    if (offset === undefined) return this.file;
    const pos = this.lines.linePos(offset);
    return `${this.file}:${pos.line}:${pos.col}`;
  }

  /**
   * `file:line:col` of the node at `path` (or of its nearest existing ancestor, or of the
   * file itself). With `key: true` the position of the map key rather than its value.
   */
  where(path: readonly (string | number)[], options: { key?: boolean } = {}): string {
    const pos = this.position(path, options);
    return pos ? `${this.file}:${pos.line}:${pos.col}` : this.file;
  }

  /** The 1-based line and column `where` names, for sorting problems by position; undefined: the file itself. */
  position(path: readonly (string | number)[], options: { key?: boolean } = {}): { line: number; col: number } | undefined {
    for (let depth = path.length; depth >= 0; depth--) {
      const prefix = path.slice(0, depth);
      const offset = options.key && depth === path.length ? this.keyOffset(prefix) : this.valueOffset(prefix);
      if (offset !== undefined) return this.lines.linePos(offset);
    }
    return undefined;
  }

  private valueOffset(path: readonly (string | number)[]): number | undefined {
    const node = path.length === 0 ? this.doc.contents : this.doc.getIn(path, true);
    return isNode(node) && node.range ? node.range[0] : undefined;
  }

  private keyOffset(path: readonly (string | number)[]): number | undefined {
    if (path.length === 0) return undefined;
    const parent = path.length === 1 ? this.doc.contents : this.doc.getIn(path.slice(0, -1), true);
    if (!parent || typeof parent !== 'object' || !('items' in parent) || !Array.isArray(parent.items)) return undefined;
    const last = path[path.length - 1];
    for (const item of parent.items as unknown[]) {
      if (item && typeof item === 'object' && 'key' in item) {
        const key = (item as { key: unknown }).key;
        if (isNode(key) && 'value' in key && String(key.value) === String(last) && key.range) return key.range[0];
      }
    }
    return undefined;
  }
}

function firstLine(message: string): string {
  const nl = message.indexOf('\n');
  return nl === -1 ? message : message.slice(0, nl);
}

/** Splits an ajv `instancePath` ("/rules/3/when") into path segments. */
export function pointerToPath(pointer: string): (string | number)[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}
