// What a terminal makes of a job's output, one line at a time, for the log view (logview.ts).
//
// - Carriage returns and backspaces move the cursor back, and what comes next overwrites what
//   was there, as in a terminal and in a notebook cell (JupyterLab's output area does the same
//   in its private `removeOverwrittenChars`: `\r\n` is a plain newline, `\r` goes back to the
//   start of the line and what follows overwrites; here cell by cell, so that colours follow the
//   characters and escape codes take no columns). Erase in line (`ESC[K`) and moves along the
//   line (`ESC[nG`, `ESC[nC`, `ESC[nD`) are honoured too.
// - SGR codes (colours: 16, 256, truecolor; bold, dim, italic, underline, strikethrough,
//   reverse, hidden) are read by anser; what anser makes of them is mapped onto a fixed palette
//   of classes (the 16 colours, those of JupyterLab's notebook outputs) and `rgb()` colours made
//   from validated numbers. Other escape sequences (OSC titles and links, cursor moves to other
//   lines, modes) and control characters are dropped, never shown.
// - A line keeps its first CUT characters; what is written past them is counted, not kept.
import Anser from 'anser';

/** The characters of a line that are kept and shown; the rest is counted (and downloadable). */
export const CUT = 10_000;

/** A control character that a terminal does not print (tab and newline are printed). */
export const SPECIAL = /[\x00-\x08\x0b-\x1f\x7f]/; // eslint-disable-line no-control-regex

/** An unfinished escape sequence longer than this is dropped rather than kept for later. */
const MAX_PENDING = 4096;
const SGR = /^[\d;:]*$/;
const NUMBER = /^\d*$/;

const COLORS = ['black', 'red', 'green', 'yellow', 'blue', 'magenta', 'cyan', 'white'];
const DECORATIONS: Record<string, number> = {
  bold: 1,
  dim: 2,
  italic: 3,
  underline: 4,
  blink: 5,
  reverse: 7,
  hidden: 8,
  strikethrough: 9
};
const SHOWN = ['bold', 'dim', 'italic', 'underline', 'strikethrough', 'hidden'];
const OPTIONS: Anser.AnserOptions = { json: true, use_classes: true };

/** How a run of text looks: classes from the fixed palette, and colours as `rgb()`. */
export interface Style {
  className: string;
  color: string;
  background: string;
}

/** A colour as anser names it, read into one of ours: a class (the 16 colours) or an rgb()
 * colour (256 and truecolor); null for the default. Anything else is ignored. */
interface Color {
  name: string; // e.g. 'red', 'bright-red' (a class of ours), or ''
  rgb: string; // e.g. 'rgb(1, 2, 3)', or ''
  sgr: string; // the SGR parameters that give it back (fg; bg adds 10)
}

function rgb(r: number, g: number, b: number): string {
  return `rgb(${r}, ${g}, ${b})`;
}

/** The xterm 256-colour palette, above the 16 named colours. */
function palette(index: number): string {
  if (index < 232) {
    const levels = [0, 95, 135, 175, 215, 255];
    const i = index - 16;
    return rgb(levels[Math.floor(i / 36)], levels[Math.floor(i / 6) % 6], levels[i % 6]);
  }
  const level = 8 + (index - 232) * 10;
  return rgb(level, level, level);
}

function readColor(name: string | null, truecolor: string | null): Color | null {
  if (!name) {
    return null;
  }
  let m = /^ansi-(bright-)?([a-z]+)$/.exec(name);
  if (m && COLORS.includes(m[2])) {
    const index = COLORS.indexOf(m[2]);
    return { name: `${m[1] ? 'bright-' : ''}${m[2]}`, rgb: '', sgr: String((m[1] ? 90 : 30) + index) };
  }
  m = /^ansi-palette-(\d{1,3})$/.exec(name);
  if (m && Number(m[1]) >= 16 && Number(m[1]) <= 255) {
    return { name: '', rgb: palette(Number(m[1])), sgr: `38;5;${Number(m[1])}` };
  }
  m = name === 'ansi-truecolor' && truecolor ? /^\s*(\d{1,3}),\s*(\d{1,3}),\s*(\d{1,3})\s*$/.exec(truecolor) : null;
  if (m && m.slice(1).every(v => Number(v) <= 255)) {
    const [r, g, b] = m.slice(1).map(Number);
    return { name: '', rgb: rgb(r, g, b), sgr: `38;2;${r};${g};${b}` };
  }
  return null;
}

/** The styles met so far, each with an id (0: the default); what an SGR code does to a style,
 * asked of anser once per (style, code). */
export class Styles {
  private readonly list: Style[] = [{ className: '', color: '', background: '' }];
  private readonly sgr: string[] = ['0'];
  private readonly ids = new Map<string, number>([['', 0]]);
  private readonly moves = new Map<number, Map<string, number>>();
  private readonly anser = new Anser();

  get(id: number): Style {
    return this.list[id] || this.list[0];
  }

  /** The style after `params` (an SGR's parameters) applied to style `from`. */
  apply(from: number, params: string): number {
    let moves = this.moves.get(from);
    let to = moves?.get(params);
    if (to === undefined) {
      // anser keeps the state: set it to `from`, then apply the code
      this.anser.processChunkJson(`0;${this.sgr[from]}m`, OPTIONS, true);
      const entry = this.anser.processChunkJson(`${params.replace(/:/g, ';')}m`, OPTIONS, true);
      to = this.intern(entry);
      if (!moves || moves.size > 1000) {
        moves = new Map();
        this.moves.set(from, moves);
      }
      moves.set(params, to);
    }
    return to;
  }

  private intern(entry: Anser.AnserJsonEntry): number {
    const fg = readColor(entry.fg, entry.fg_truecolor);
    const bg = readColor(entry.bg, entry.bg_truecolor);
    const decorations = Object.keys(DECORATIONS).filter(d => (entry.decorations || []).includes(d as never));
    const sgr = [
      ...decorations.map(d => String(DECORATIONS[d])),
      ...(fg ? [fg.sgr] : []),
      ...(bg ? [bg.sgr.replace(/^(\d)/, (_, d) => String(Number(d) + 1))] : [])
    ].join(';');
    const known = this.ids.get(sgr);
    if (known !== undefined) {
      return known;
    }
    if (this.list.length >= 0xffff) {
      return 0; // that many styles: the rest are shown plain
    }
    // reverse video swaps the colours, the defaults included
    const reverse = decorations.includes('reverse');
    const [front, back] = reverse ? [bg, fg] : [fg, bg];
    const classes = decorations.filter(d => SHOWN.includes(d)).map(d => `jp-JobsAnsi-${d}`);
    if (front?.name) {
      classes.push(`jp-JobsAnsi-${front.name}-fg`);
    } else if (!front && reverse) {
      classes.push('jp-JobsAnsi-inverse-fg');
    }
    if (back?.name) {
      classes.push(`jp-JobsAnsi-${back.name}-bg`);
    } else if (!back && reverse) {
      classes.push('jp-JobsAnsi-inverse-bg');
    }
    const id = this.list.length;
    this.list.push({ className: classes.join(' '), color: front?.rgb || '', background: back?.rgb || '' });
    this.sgr.push(sgr || '0');
    this.ids.set(sgr, id);
    return id;
  }
}

/** Per stream: the style in force (SGR state carries over lines) and the start of an escape
 * sequence that the next chunk finishes. */
export class StreamState {
  style = 0;
  pending = '';
}

/** One line as a terminal holds it: its text (up to CUT), the styled runs over it, the cursor,
 * and how wide it got. */
export class TermLine {
  text = '';
  /** [from, to, style] triples, sorted, not overlapping; unstyled text has none. */
  runs: number[] = [];
  cursor = 0;
  /** Columns the line reached (past CUT: cut). */
  width = 0;

  reset(text: string): void {
    this.text = text.slice(0, CUT);
    if (this.runs.length) {
      this.runs.length = 0;
    }
    this.cursor = text.length;
    this.width = text.length;
  }

  /** Write `chunk` (no newline in it) as a terminal would. `open`: the line may go on in the
   * next chunk (an unfinished escape sequence at the end is kept in `state.pending`). A scan by
   * character codes: no regular expression matches to allocate, line after line. */
  feed(chunk: string, state: StreamState, styles: Styles, open: boolean): void {
    const n = chunk.length;
    let from = 0; // the text not printed yet
    let i = 0;
    while (i < n) {
      const c = chunk.charCodeAt(i);
      if ((c >= 0x20 && c !== 0x7f) || c === 0x09) {
        i++;
        continue;
      }
      if (i > from) {
        this.print(chunk.slice(from, i), state.style);
      }
      if (c === 0x1b) {
        const end = this.escape(chunk, i, state, styles);
        if (end < 0) {
          // unfinished: the next chunk may finish it (or the line ended: dropped)
          state.pending = open && n - i <= MAX_PENDING ? chunk.slice(i) : '';
          return;
        }
        i = end;
      } else {
        if (c === 0x0d) {
          this.cursor = 0;
        } else if (c === 0x08) {
          this.cursor = Math.max(0, this.cursor - 1);
        } // other controls (bell, ...): not shown
        i++;
      }
      from = i;
    }
    if (from < n) {
      this.print(from ? chunk.slice(from) : chunk, state.style);
    }
  }

  /** The runs, packed into a string of char codes (3 a run), or undefined when unstyled. */
  look(): string | undefined {
    if (!this.runs.length) {
      return undefined;
    }
    if (this.runs.length <= 3 * 1024) {
      return String.fromCharCode.apply(null, this.runs);
    }
    let packed = '';
    for (let i = 0; i < this.runs.length; i += 3 * 1024) {
      packed += String.fromCharCode.apply(null, this.runs.slice(i, i + 3 * 1024));
    }
    return packed;
  }

  /** The escape sequence at `i` (an ESC) acted on or dropped; where it ends, or -1 when the
   * chunk ends first. CSI: parameters, intermediates, final; OSC up to BEL or ST; DCS, SOS,
   * PM, APC up to ST; otherwise ESC, intermediates, final. */
  private escape(s: string, i: number, state: StreamState, styles: Styles): number {
    const n = s.length;
    if (i + 1 >= n) {
      return -1;
    }
    const kind = s.charCodeAt(i + 1);
    let j = i + 2;
    let c = 0;
    if (kind === 0x5b) {
      while (j < n && (c = s.charCodeAt(j)) >= 0x30 && c <= 0x3f) {
        j++;
      }
      const params = j;
      while (j < n && (c = s.charCodeAt(j)) >= 0x20 && c <= 0x2f) {
        j++;
      }
      if (j >= n) {
        return -1;
      }
      if (c < 0x40 || c > 0x7e) {
        return j; // not a sequence: what was read is dropped
      }
      if (params === j) {
        this.csi(s.slice(i + 2, params), c, state, styles);
      }
      return j + 1;
    }
    if (kind === 0x5d || kind === 0x50 || kind === 0x58 || kind === 0x5e || kind === 0x5f) {
      for (; j < n; j++) {
        c = s.charCodeAt(j);
        if (c === 0x07 && kind === 0x5d) {
          return j + 1;
        }
        if (c === 0x1b) {
          if (j + 1 >= n) {
            return -1;
          }
          return s.charCodeAt(j + 1) === 0x5c ? j + 2 : j;
        }
      }
      return -1;
    }
    j = i + 1;
    while (j < n && (c = s.charCodeAt(j)) >= 0x20 && c <= 0x2f) {
      j++;
    }
    if (j >= n) {
      return -1;
    }
    return c >= 0x30 && c <= 0x7e ? j + 1 : j; // a lone ESC is dropped
  }

  private csi(params: string, final: number, state: StreamState, styles: Styles): void {
    if (final === 0x6d) {
      // m: SGR
      if (SGR.test(params)) {
        state.style = styles.apply(state.style, params);
      }
      return;
    }
    if (!NUMBER.test(params)) {
      return; // private modes (cursor shown or hidden, ...): nothing to show
    }
    const n = Number(params) || 0;
    if (final === 0x4b) {
      this.erase(n); // K
    } else if (final === 0x47 || final === 0x60) {
      this.cursor = Math.max(0, (n || 1) - 1); // G, `
    } else if (final === 0x43) {
      this.cursor += n || 1; // C
    } else if (final === 0x44) {
      this.cursor = Math.max(0, this.cursor - (n || 1)); // D
    }
    // other moves (up, down), erasing the screen, ...: they act on other lines; dropped
  }

  private erase(mode: number): void {
    if (mode === 0) {
      if (this.cursor < this.text.length) {
        this.text = this.text.slice(0, this.cursor);
        this.clip(this.cursor);
      }
      this.width = Math.min(this.width, Math.max(this.cursor, this.text.length));
    } else if (mode === 1) {
      const end = Math.min(this.cursor + 1, this.text.length);
      this.text = ' '.repeat(end) + this.text.slice(end);
      this.paint(0, end, 0);
    } else if (mode === 2) {
      this.text = '';
      this.runs = [];
      this.width = 0;
    }
  }

  private print(s: string, style: number): void {
    if (!s) {
      return;
    }
    const at = this.cursor;
    this.cursor += s.length;
    this.width = Math.max(this.width, this.cursor);
    if (at >= CUT) {
      return;
    }
    const end = Math.min(this.cursor, CUT);
    const piece = end - at < s.length ? s.slice(0, end - at) : s;
    if (at > this.text.length) {
      this.text += ' '.repeat(at - this.text.length);
    }
    this.text = at === this.text.length ? this.text + piece : this.text.slice(0, at) + piece + this.text.slice(end);
    this.paint(at, end, style);
  }

  /** Runs end at `end`. */
  private clip(end: number): void {
    const kept: number[] = [];
    for (let k = 0; k < this.runs.length; k += 3) {
      if (this.runs[k] < end) {
        kept.push(this.runs[k], Math.min(end, this.runs[k + 1]), this.runs[k + 2]);
      }
    }
    this.runs = kept;
  }

  /** [a, b) takes `style` (0: unstyled). */
  private paint(a: number, b: number, style: number): void {
    const runs = this.runs;
    const n = runs.length;
    if (!n || runs[n - 2] <= a) {
      // at the end (the usual case): extend the last run or add one
      if (style) {
        if (n && runs[n - 2] === a && runs[n - 1] === style) {
          runs[n - 2] = b;
        } else {
          runs.push(a, b, style);
        }
      }
      return;
    }
    const out: number[] = [];
    let placed = false;
    const place = () => {
      if (!placed && style) {
        out.push(a, b, style);
      }
      placed = true;
    };
    for (let k = 0; k < n; k += 3) {
      const [f, t, s] = [runs[k], runs[k + 1], runs[k + 2]];
      if (t <= a) {
        out.push(f, t, s);
      } else if (f >= b) {
        place();
        out.push(f, t, s);
      } else {
        if (f < a) {
          out.push(f, a, s);
        }
        place();
        if (t > b) {
          out.push(b, t, s);
        }
      }
    }
    place();
    this.runs = out;
  }
}

/** The runs packed by TermLine.look, as [from, to, style] triples. */
export function unpack(look: string): number[] {
  const runs: number[] = new Array(look.length);
  for (let i = 0; i < look.length; i++) {
    runs[i] = look.charCodeAt(i);
  }
  return runs;
}
