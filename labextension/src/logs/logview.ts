// A log view that stays fast with millions of lines: only the visible lines are in the DOM.
// It can wrap long lines, highlight a search, jump to a line, and while it follows the end it
// keeps the end in view whatever happens to its size.

const STDERR = 1;
// Browsers cap an element's height (Firefox near 17.9 million px); past this, scrolling is scaled.
const MAX_HEIGHT = 8_000_000;
const LINE = 18;
const PADDING = 12;
/** What a line that explains a failure usually says. */
const ERROR_WORDS = /\b(error|exception|traceback|fatal|panic)\b/i;

/** Lines of a log, each tagged with its stream; a line stays open until its newline arrives. */
export class LogBuffer {
  readonly lines: string[] = [];
  readonly streams: number[] = [];
  private open = false;

  append(text: string, stream: 'stdout' | 'stderr'): void {
    const code = stream === 'stderr' ? STDERR : 0;
    const parts = text.split('\n');
    for (let i = 0; i < parts.length; i++) {
      const last = i === parts.length - 1;
      if (last && parts[i] === '') {
        this.open = false;
        break;
      }
      if (i === 0 && this.open && this.streams[this.streams.length - 1] === code) {
        this.lines[this.lines.length - 1] += parts[i];
      } else {
        this.lines.push(parts[i]);
        this.streams.push(code);
      }
      this.open = last;
    }
  }

  get length(): number {
    return this.lines.length;
  }

  /** The whole log as text (for a download). */
  text(): string {
    return this.lines.join('\n') + (this.lines.length ? '\n' : '');
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
    return this.columns ? Math.max(1, Math.ceil(this.buffer.lines[i].length / this.columns)) : 1;
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
  private rendered = '';
  private needle = '';
  private current = -1;
  private followChanged: (following: boolean) => void = () => undefined;

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
    this.rows = new Rows(buffer, 0);
    this.node.addEventListener('scroll', () => {
      const { scrollTop, scrollHeight, clientHeight } = this.node;
      this.setFollow(scrollTop + clientHeight >= scrollHeight - 2 * LINE);
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

  /** Highlight `needle` in the lines; `current` is the line of the match being looked at. */
  highlight(needle: string, current = -1): void {
    this.needle = needle.toLowerCase();
    this.current = current;
    this.rendered = '';
    this.schedule();
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
    const tail = total ? this.buffer.lines[total - 1].length : 0;
    const key = `${first}:${last}:${offset}:${total}:${tail}:${this.columns}`;
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
    const at = this.needle ? text.toLowerCase().indexOf(this.needle) : -1;
    if (at === -1) {
      line.textContent = text || '\u200b';
      return line;
    }
    let from = 0;
    const lower = text.toLowerCase();
    for (let hit = at; hit !== -1; hit = lower.indexOf(this.needle, from)) {
      line.append(text.slice(from, hit));
      const mark = document.createElement('mark');
      mark.textContent = text.slice(hit, hit + this.needle.length);
      line.append(mark);
      from = hit + this.needle.length;
    }
    line.append(text.slice(from));
    return line;
  }
}
