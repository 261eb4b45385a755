// A notebook job's parameters: detected in the notebook's cell tagged `parameters` (simple
// `name = literal` lines), and written and read as the form's `NAME=VALUE` lines.

export type Parameters = Record<string, unknown>;

/** What of a notebook (nbformat JSON, from the contents manager or an open model) is read. */
export interface NotebookContent {
  cells?: { cell_type?: string; source?: string | string[]; metadata?: { tags?: unknown } }[];
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
const KEYWORDS = { True: 'true', False: 'false', None: 'null' } as Record<string, string>;
const ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', "'": "'", '"': '"', '0': '\0' };

/** A Python literal as JSON text, or null when it is more than quoted strings, numbers,
 * True/False/None, lists and dicts (a call, a name, a tuple, an f-string...). A trailing
 * comment is dropped. */
function pythonToJson(text: string): string | null {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    const rest = text.slice(i);
    if (c === '#') {
      break; // a comment, to the end of the line
    }
    if (c === "'" || c === '"') {
      if (rest.startsWith(c.repeat(3))) {
        return null; // triple quotes: leave it
      }
      let value = '';
      i++;
      while (i < text.length && text[i] !== c) {
        if (text[i] === '\\') {
          const escaped = ESCAPES[text[i + 1]];
          if (escaped === undefined) {
            return null;
          }
          value += escaped;
          i += 2;
        } else {
          value += text[i++];
        }
      }
      if (i >= text.length) {
        return null; // not closed on this line
      }
      out += JSON.stringify(value);
      i++;
      continue;
    }
    const number = /^(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][-+]?\d+)?/.exec(rest);
    if (number) {
      // 1_000, .5 and 5. are Python; JSON wants 1000, 0.5 and 5.0
      out += number[0].replace(/_/g, '').replace(/^\./, '0.').replace(/\.(?=[eE]|$)/, '.0');
      i += number[0].length;
      continue;
    }
    const word = /^[A-Za-z_]\w*/.exec(rest);
    if (word) {
      if (!(word[0] in KEYWORDS)) {
        return null; // a name, a call, a string prefix: not a literal
      }
      out += KEYWORDS[word[0]];
      i += word[0].length;
      continue;
    }
    if (c === '(') {
      return null; // a tuple or a call
    }
    if (c === ',' && /^,\s*[\]}]/.test(rest)) {
      i++; // Python allows a trailing comma
      continue;
    }
    out += c;
    i++;
  }
  return out.trim();
}

/** `name = literal` (or `name: type = literal`) as a name and its value; null otherwise. */
export function parseAssignment(line: string): [string, unknown] | null {
  const match = /^([A-Za-z_]\w*)\s*(?::[^=]*)?=(?!=)(.*)$/.exec(line.trim());
  if (!match) {
    return null;
  }
  const json = pythonToJson(match[2]);
  if (!json) {
    return null;
  }
  try {
    return [match[1], JSON.parse(json)];
  } catch {
    return null;
  }
}

function tags(cell: { metadata?: { tags?: unknown } }): string[] {
  const value = cell.metadata?.tags;
  return Array.isArray(value) ? value.filter((t): t is string => typeof t === 'string') : [];
}

/** The parameters a notebook declares: the simple assignments of its first code cell tagged
 * `parameters`, in order; what cannot be read as a literal is left out. */
export function detectParameters(notebook: NotebookContent | null | undefined): Parameters {
  const cell = (notebook?.cells || []).find(c => c.cell_type === 'code' && tags(c).includes('parameters'));
  const source = Array.isArray(cell?.source) ? cell!.source.join('') : cell?.source ?? '';
  const found: Parameters = {};
  for (const line of source.split('\n')) {
    const parsed = line.startsWith(' ') || line.startsWith('\t') ? null : parseAssignment(line);
    if (parsed) {
      found[parsed[0]] = parsed[1];
    }
  }
  return found;
}

/** One value as the form shows it: a string bare when it reads back as that string, else JSON. */
function valueText(value: unknown): string {
  if (typeof value === 'string' && value === value.trim() && !value.includes('\n')) {
    try {
      JSON.parse(value);
    } catch {
      return value;
    }
  }
  return literal(value);
}

/** Parameters as the form's lines, `NAME=VALUE` each. */
export function parametersText(parameters: Parameters | null | undefined): string {
  return Object.entries(parameters || {})
    .map(([name, value]) => `${name}=${valueText(value)}`)
    .join('\n');
}

/** The form's lines as parameters: each VALUE is JSON when it parses, else a string. Blank
 * lines are skipped; a line that is not NAME=VALUE is an error that names it. */
export function parseParameters(text: string): { parameters: Parameters; error: string | null } {
  const parameters: Parameters = {};
  const lines = text.split('\n');
  for (let n = 0; n < lines.length; n++) {
    if (!lines[n].trim()) {
      continue;
    }
    const at = lines[n].indexOf('=');
    const name = at < 0 ? '' : lines[n].slice(0, at).trim();
    if (!IDENTIFIER.test(name)) {
      return { parameters, error: `line ${n + 1}: a parameter is NAME=VALUE with NAME an identifier, not ${JSON.stringify(lines[n].trim())}` };
    }
    const value = lines[n].slice(at + 1).trim();
    try {
      parameters[name] = JSON.parse(value);
    } catch {
      parameters[name] = value;
    }
  }
  return { parameters, error: null };
}

/** A value as JSON that reads well (a space after commas and colons) and that YAML reads back
 * the same, as the %job magic does: a number's exponent comes after a decimal point (YAML 1.1
 * reads `1e-07` as a string). */
export function literal(value: unknown): string {
  if (typeof value === 'number') {
    return JSON.stringify(value).replace(/^(-?\d+)(e[-+]\d+)$/, '$1.0$2');
  }
  if (Array.isArray(value)) {
    return `[${value.map(literal).join(', ')}]`;
  }
  if (value && typeof value === 'object') {
    return `{${Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}: ${literal(v)}`).join(', ')}}`;
  }
  return JSON.stringify(value ?? null);
}
