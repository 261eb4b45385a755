// A log view that stays fast with millions of lines: only the visible lines are in the DOM.
// It can wrap long lines, highlight a search, jump to a line, and while it follows the end it
// keeps the end in view whatever happens to its size. Lines show what a terminal would
// (terminal.ts): carriage returns overwrite, colours and styles, lines cut at CUT with a note.
import { CUT, SPECIAL, StreamState, Styles, TermLine, unpack } from './terminal';

const STDERR = 1;
// Browsers cap an element's height (Firefox near 17.9 million px); past this, scrolling is scaled.
const MAX_HEIGHT = 8_000_000;
const LINE = 18;
const PADDING = 12;
/** What a line that explains a failure usually says. */
const ERROR_WORDS = /\b(error|exception|traceback|fatal|panic)\b/i;

const DOWNLOAD = 'download the full log';

/** What a cut line says before its text (its button downloads the log). */
export function cutNote(width: number): string {
  return `line cut at ${CUT.toLocaleString('en-US')} of ${width.toLocaleString('en-US')} characters: ${DOWNLOAD} `;
}

/** Lines of a log as a terminal shows them, each tagged with its stream; a line stays open
 * until its newline arrives (and, while open, a `\r` or an escape code may change it). Lines
 * hold their visible text (search, wrapping and "First error" read it); colours and styles are
 * kept apart, only for the lines that have some, and so is the width of a line cut at CUT. */
export class LogBuffer {
  readonly lines: string[] = [];
  readonly streams: number[] = [];
  readonly styles = new Styles();
  /** Per line: its styled runs (TermLine.look), or undefined (plain lines are not written:
   * a log without colours keeps none). */
  private readonly looks: (string | undefined)[] = [];
  /** The lines cut at CUT: their full width. */
  private readonly cuts = new Map<number, number>();
  private readonly states = [new StreamState(), new StreamState()];
  /** The open line, when it needs a terminal (termLine: its index, or -1). */
  private readonly term = new TermLine();
  private termLine = -1;
  private open = false;
  private _version = 0;

  append(text: string, stream: 'stdout' | 'stderr'): void {
    const code = stream === 'stderr' ? STDERR : 0;
    const state = this.states[code];
    if (state.pending) {
      text = state.pending + text;
      state.pending = '';
    }
    // nothing a terminal would act on: lines as they are (the fast path)
    const plain = !state.style && !SPECIAL.test(text);
    const parts = text.split('\n');
    for (let i = 0; i < parts.length; i++) {
      const last = i === parts.length - 1;
      const part = parts[i];
      if (last && part === '') {
        this.open = false;
        break;
      }
      const at = this.lines.length - 1;
      if (i === 0 && this.open && this.streams[at] === code) {
        if (plain && this.termLine !== at && this.lines[at].length + part.length <= CUT) {
          this.lines[at] += part;
        } else {
          this.feed(at, part, state, last);
        }
      } else if ((plain || (!state.style && !SPECIAL.test(part))) && part.length <= CUT) {
        this.lines.push(part);
        this.streams.push(code);
      } else {
        this.lines.push('');
        this.streams.push(code);
        this.feed(at + 1, part, state, last);
      }
      this.open = last;
    }
    this._version++;
  }

  get length(): number {
    return this.lines.length;
  }

  /** Changes with every append (the last line may change without growing). */
  get version(): number {
    return this._version;
  }

  /** Line `i`'s styled runs, packed (terminal.ts: unpack), or undefined. */
  look(i: number): string | undefined {
    return this.looks[i];
  }

  /** The width line `i` had when it was cut at CUT characters, or 0. */
  cutWidth(i: number): number {
    return this.cuts.size ? this.cuts.get(i) || 0 : 0;
  }

  /** Characters line `i` takes in the view (its note included, when cut). */
  shownLength(i: number): number {
    const cut = this.cutWidth(i);
    return this.lines[i].length + (cut ? cutNote(cut).length : 0);
  }

  /** Line `at` through the terminal. */
  private feed(at: number, part: string, state: StreamState, open: boolean): void {
    const term = this.term;
    if (this.termLine !== at) {
      term.reset(this.lines[at]);
      this.termLine = at;
    }
    term.feed(part, state, this.styles, open);
    this.lines[at] = term.text;
    const look = term.look();
    if (look !== undefined || this.looks[at] !== undefined) {
      this.looks[at] = look;
    }
    if (term.width > CUT) {
      this.cuts.set(at, term.width);
    } else if (this.cuts.size) {
      this.cuts.delete(at);
    }
  }

  /** The first line that explains a failure: a stderr line, or one that names an error. */
  firstError(): number {
    const stderr = this.streams.indexOf(STDERR);
    for (let i = 0; i < this.lines.length && (stderr === -1 || i < stderr); i++) {
      if (ERROR_WORDS.test(this.lines[i])) {
        return i;
      }
    }
    return stderr;
  }

  /** The lines that contain `needle` (case-insensitive). */
  search(needle: string): number[] {
    const lower = needle.toLowerCase();
    const hits: number[] = [];
    if (!lower) {
      return hits;
    }
    for (let i = 0; i < this.lines.length; i++) {
      if (this.lines[i].toLowerCase().includes(lower)) {
        hits.push(i);
      }
    }
    return hits;
  }
}

/** Where each line starts, in rows of LINE px: one row per line, or with wrapping as many rows
 * as the line needs at the view's width (monospace: columns are characters). */
class Rows {
  private starts = new Float64Array(1024);
  private counted = 0;
  constructor(
    private readonly buffer: LogBuffer,
    private readonly columns: number // 0: no wrapping
  ) {}

  /** The row where line `i` starts (i up to the line count). */
  start(i: number): number {
    if (!this.columns) {
      return i;
    }
    this.count(i);
    return this.starts[i];
  }

  rows(i: number): number {
    return this.columns ? Math.max(1, Math.ceil(this.buffer.shownLength(i) / this.columns)) : 1;
  }

  /** The line at row `row`. */
  lineAt(row: number): number {
    const total = this.buffer.length;
    if (!this.columns) {
      return Math.min(Math.max(0, Math.floor(row)), Math.max(0, total - 1));
    }
    this.count(total);
    let lo = 0;
    let hi = Math.max(0, total - 1);
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid] <= row) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    return lo;
  }

  private count(upto: number): void {
    // the last line may still grow: recount it each time
    const from = Math.max(0, Math.min(this.counted, this.buffer.length - 1));
    if (upto + 1 > this.starts.length) {
      const grown = new Float64Array(Math.max(upto + 1, this.starts.length * 2));
      grown.set(this.starts);
      this.starts = grown;
    }
    for (let i = from; i < upto; i++) {
      this.starts[i + 1] = this.starts[i] + this.rows(i);
    }
    this.counted = Math.max(from, upto);
  }
}

export class LogView {
  readonly node: HTMLDivElement;
  private readonly spacer: HTMLDivElement;
  private readonly content: HTMLDivElement;
  private readonly resize: ResizeObserver;
  private rows: Rows;
  private wrapped = false;
  private columns = 0;
  private frame = 0;
  private follow = true;
  private lastTop = 0; // where the last scroll left the view: scrolling up stops following
  private rendered = '';
  private needle = '';
  private current = -1;
  private followChanged: (following: boolean) => void = () => undefined;
  private downloadAsked: () => void = () => undefined;

  constructor(readonly buffer: LogBuffer) {
    this.node = document.createElement('div');
    this.node.className = 'jp-JobsLog';
    this.node.tabIndex = 0;
    this.node.setAttribute('role', 'log');
    this.node.setAttribute('aria-label', 'job log');
    this.spacer = document.createElement('div');
    this.spacer.className = 'jp-JobsLog-spacer';
    this.content = document.createElement('div');
    this.content.className = 'jp-JobsLog-lines';
    this.spacer.appendChild(this.content);
    this.node.appendChild(this.spacer);
    // a cut line's note: its "download the full log" (a span, inline: wrapping counts it)
    const asked = (event: Event) => (event.target as Element).closest?.('.jp-JobsLog-download');
    this.content.addEventListener('click', event => {
      if (asked(event)) {
        this.downloadAsked();
      }
    });
    this.content.addEventListener('keydown', event => {
      if ((event.key === 'Enter' || event.key === ' ') && asked(event)) {
        event.preventDefault();
        this.downloadAsked();
      }
    });
    this.rows = new Rows(buffer, 0);
    // following stops only when the user scrolls up, and starts again at the end: a view that
    // shrank (rows added above it) leaves the end below without anyone scrolling away
    this.node.addEventListener('scroll', () => {
      const { scrollTop, scrollHeight, clientHeight } = this.node;
      if (scrollTop + clientHeight >= scrollHeight - 2 * LINE) {
        this.setFollow(true);
      } else if (scrollTop < this.lastTop - 1) {
        this.setFollow(false);
      }
      this.lastTop = scrollTop;
      this.schedule();
    });
    // rows added around the view (a failure message, a finish time) change its height: while
    // following, the end stays in view
    this.resize = new ResizeObserver(() => {
      this.measure();
      this.schedule();
    });
    this.resize.observe(this.node);
  }

  get following(): boolean {
    return this.follow;
  }

  /** Called when following the end starts or stops (the user scrolled away). */
  onFollowChanged(slot: (following: boolean) => void): void {
    this.followChanged = slot;
  }

  /** Called when the note of a cut line is asked to download the full log. */
  onDownload(slot: () => void): void {
    this.downloadAsked = slot;
  }

  /** Call after the buffer grew: repaints on the next frame, at most once per frame. */
  schedule(): void {
    if (!this.frame) {
      this.frame = requestAnimationFrame(() => {
        this.frame = 0;
        this.render();
      });
    }
  }

  scrollToEnd(): void {
    this.setFollow(true);
    this.render();
  }

  setWrap(on: boolean): void {
    this.wrapped = on;
    this.node.classList.toggle('jp-mod-wrap', on);
    this.measure(true);
    this.render();
  }

  /** Highlight `needle` in the lines; `current` is the line of the match being looked at.
   * Drawn at once, not on the next frame: the search's count of matches, which React shows
   * when the input's event ends, must never be on screen before the marks it counts. */
  highlight(needle: string, current = -1): void {
    this.needle = needle.toLowerCase();
    this.current = current;
    this.rendered = '';
    this.render();
  }

  /** Bring line `index` into view, a little below the top, and stop following. */
  scrollToLine(index: number): void {
    this.setFollow(false);
    const total = this.totalRows();
    const height = this.node.clientHeight || 400;
    const y = Math.max(0, this.rows.start(index) * LINE - 3 * LINE);
    const full = total * LINE;
    this.node.scrollTop = full > MAX_HEIGHT ? (y / Math.max(1, full - height)) * (MAX_HEIGHT - height) : y;
    this.render();
  }

  dispose(): void {
    cancelAnimationFrame(this.frame);
    this.resize.disconnect();
  }

  private setFollow(on: boolean): void {
    if (on !== this.follow) {
      this.follow = on;
      this.followChanged(on);
    }
  }

  /** Columns that fit the view, when wrapping (a new Rows when they change). */
  private measure(force = false): void {
    let columns = 0;
    if (this.wrapped) {
      const probe = document.createElement('span');
      probe.textContent = 'x'.repeat(100);
      probe.style.visibility = 'hidden';
      this.content.appendChild(probe);
      const width = probe.getBoundingClientRect().width / 100 || 7.8;
      probe.remove();
      columns = Math.max(10, Math.floor((this.node.clientWidth - PADDING - 16) / width));
    }
    if (force || columns !== this.columns) {
      this.columns = columns;
      this.rows = new Rows(this.buffer, columns);
      this.rendered = '';
    }
  }

  private totalRows(): number {
    return this.rows.start(this.buffer.length);
  }

  private render(): void {
    const total = this.buffer.length;
    const full = this.totalRows() * LINE;
    const scaled = full > MAX_HEIGHT;
    this.spacer.style.height = `${scaled ? MAX_HEIGHT : full}px`;
    if (this.follow) {
      this.node.scrollTop = this.node.scrollHeight;
    }
    const height = this.node.clientHeight || 400;
    const scrollTop = this.node.scrollTop;
    // the position in the full log's pixels; with scaling, a fraction of it
    const y = scaled ? (Math.min(1, scrollTop / Math.max(1, MAX_HEIGHT - height)) * Math.max(0, full - height)) : scrollTop;
    let first = this.rows.lineAt(y / LINE);
    if (!scaled) {
      first = Math.max(0, first - 20);
    }
    const offset = scaled ? scrollTop - (y - this.rows.start(first) * LINE) : this.rows.start(first) * LINE;
    let last = first;
    for (let rows = 0; last < total && rows < height / LINE + 40; last++) {
      rows += this.rows.rows(last);
    }
    const key = `${first}:${last}:${offset}:${total}:${this.buffer.version}:${this.columns}`;
    if (key === this.rendered) {
      return;
    }
    this.rendered = key;
    const fragment = document.createDocumentFragment();
    for (let i = first; i < last; i++) {
      fragment.appendChild(this.line(i));
    }
    this.content.style.transform = `translateY(${offset}px)`;
    this.content.replaceChildren(fragment);
  }

  private line(i: number): HTMLDivElement {
    const line = document.createElement('div');
    line.className = this.buffer.streams[i] === STDERR ? 'jp-JobsLog-line jp-mod-stderr' : 'jp-JobsLog-line';
    if (i === this.current) {
      line.classList.add('jp-mod-current');
    }
    line.dataset.line = String(i + 1);
    if (this.columns) {
      line.style.height = `${this.rows.rows(i) * LINE}px`;
    }
    const text = this.buffer.lines[i];
    const cut = this.buffer.cutWidth(i);
    if (cut) {
      line.append(this.note(cut));
    }
    const look = this.buffer.look(i);
    const lower = this.needle ? text.toLowerCase() : '';
    const at = this.needle ? lower.indexOf(this.needle) : -1;
    if (!look && at === -1) {
      line.append(text || (cut ? '' : '\u200b'));
      return line;
    }
    // pieces between the edges of styled runs and of matches: each a text node or a styled
    // span (classes and rgb() colours of the fixed palette; the text only as text), those in
    // a match inside its <mark>
    const runs = look ? unpack(look) : [];
    const hits: number[] = [];
    for (let hit = at; hit !== -1; hit = lower.indexOf(this.needle, hit + this.needle.length)) {
      hits.push(hit, hit + this.needle.length);
    }
    let run = 0;
    let h = 0;
    let mark: HTMLElement | null = null;
    for (let from = 0; from < text.length; ) {
      while (run < runs.length && runs[run + 1] <= from) {
        run += 3;
      }
      while (h < hits.length && hits[h + 1] <= from) {
        h += 2;
        mark = null;
      }
      const inRun = run < runs.length && runs[run] <= from;
      const inHit = h < hits.length && hits[h] <= from;
      let to = text.length;
      if (run < runs.length) {
        to = Math.min(to, inRun ? runs[run + 1] : runs[run]);
      }
      if (h < hits.length) {
        to = Math.min(to, inHit ? hits[h + 1] : hits[h]);
      }
      const piece = text.slice(from, to);
      let node: Node;
      if (inRun) {
        const style = this.buffer.styles.get(runs[run + 2]);
        const span = document.createElement('span');
        span.className = style.className;
        if (style.color) {
          span.style.color = style.color;
        }
        if (style.background) {
          span.style.backgroundColor = style.background;
        }
        span.textContent = piece;
        node = span;
      } else {
        node = document.createTextNode(piece);
      }
      if (inHit) {
        if (!mark) {
          mark = document.createElement('mark');
          line.append(mark);
        }
        mark.append(node);
      } else {
        line.append(node);
      }
      from = to;
    }
    if (!text && !cut) {
      line.append('\u200b');
    }
    return line;
  }

  /** The note before a cut line, with a button that downloads the log. */
  private note(width: number): HTMLSpanElement {
    const note = document.createElement('span');
    note.className = 'jp-JobsLog-cut';
    const words = cutNote(width);
    note.append(words.slice(0, words.indexOf(DOWNLOAD)));
    const button = document.createElement('span');
    button.className = 'jp-JobsLog-download';
    button.setAttribute('role', 'button');
    button.tabIndex = 0;
    button.textContent = DOWNLOAD;
    note.append(button, ' ');
    return note;
  }
}
