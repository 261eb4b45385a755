// A log view that stays fast with millions of lines: only the visible lines are in the DOM.

const STDERR = 1;
// Browsers cap an element's height (Firefox near 17.9 million px); past this, scrolling is scaled.
const MAX_HEIGHT = 8_000_000;

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
}

export class LogView {
  readonly node: HTMLDivElement;
  private readonly spacer: HTMLDivElement;
  private readonly content: HTMLDivElement;
  private lineHeight = 18;
  private frame = 0;
  private follow = true;
  private rendered = '';

  constructor(readonly buffer: LogBuffer) {
    this.node = document.createElement('div');
    this.node.className = 'jp-JobsLog';
    this.node.tabIndex = 0;
    this.spacer = document.createElement('div');
    this.spacer.className = 'jp-JobsLog-spacer';
    this.content = document.createElement('div');
    this.content.className = 'jp-JobsLog-lines';
    this.spacer.appendChild(this.content);
    this.node.appendChild(this.spacer);
    this.node.addEventListener('scroll', () => {
      const { scrollTop, scrollHeight, clientHeight } = this.node;
      this.follow = scrollTop + clientHeight >= scrollHeight - 2 * this.lineHeight;
      this.schedule();
    });
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
    this.follow = true;
    this.render();
  }

  dispose(): void {
    cancelAnimationFrame(this.frame);
  }

  private render(): void {
    const total = this.buffer.length;
    const full = total * this.lineHeight;
    const scaled = full > MAX_HEIGHT;
    this.spacer.style.height = `${scaled ? MAX_HEIGHT : full}px`;
    if (this.follow) {
      this.node.scrollTop = this.node.scrollHeight;
    }
    const height = this.node.clientHeight || 400;
    const shown = Math.ceil(height / this.lineHeight);
    const scrollTop = this.node.scrollTop;
    let first: number;
    let offset: number;
    if (scaled) {
      // the scroll position is a fraction of the log: lines are drawn from the viewport's top
      const fraction = Math.min(1, scrollTop / Math.max(1, MAX_HEIGHT - height));
      first = Math.floor(fraction * Math.max(0, total - shown));
      offset = scrollTop;
    } else {
      first = Math.max(0, Math.floor(scrollTop / this.lineHeight) - 20);
      offset = first * this.lineHeight;
    }
    const last = Math.min(total, first + shown + 40);
    const key = `${first}:${last}:${offset}:${total}:${total ? this.buffer.lines[total - 1].length : 0}`;
    if (key === this.rendered) {
      return;
    }
    this.rendered = key;
    const fragment = document.createDocumentFragment();
    for (let i = first; i < last; i++) {
      const line = document.createElement('div');
      line.className = this.buffer.streams[i] === STDERR ? 'jp-JobsLog-line jp-mod-stderr' : 'jp-JobsLog-line';
      line.textContent = this.buffer.lines[i] || '\u200b';
      fragment.appendChild(line);
    }
    this.content.style.transform = `translateY(${offset}px)`;
    this.content.replaceChildren(fragment);
  }
}
