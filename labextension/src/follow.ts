// Following a job as it runs: its log (into a LogBuffer) and its metrics (into growing
// columns), each a resumable NDJSON stream that ends with the job's final status.
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { followLogs, followMetrics, LogEnd, MetricsPage } from './api';
import { LogBuffer } from './logview';

/** Streams until the final status arrives. A dropped stream (server restart, idle proxy)
 * resumes a second later from where it stopped; failures and streams that bring nothing new
 * back off (up to 30 s). */
abstract class Follower {
  private _end: LogEnd | null = null;
  private _disposed = false;
  private readonly _abort = new AbortController();
  private readonly _poll: Poll;
  private readonly _appended = new Signal<Follower, void>(this);
  private readonly _ended = new Signal<Follower, LogEnd>(this);

  constructor(
    readonly id: string,
    kind: string
  ) {
    this._poll = new Poll({
      factory: () => this.step(),
      frequency: { interval: 1000, backoff: true, max: 30000 },
      standby: 'never',
      name: `jupyter-jobs:${kind}-${id}`
    });
  }

  /** Emitted after something was added. */
  get appended(): ISignal<Follower, void> {
    return this._appended;
  }
  /** Emitted once, with the job's final status, when everything was read. */
  get ended(): ISignal<Follower, LogEnd> {
    return this._ended;
  }
  get end(): LogEnd | null {
    return this._end;
  }
  get isDisposed(): boolean {
    return this._disposed;
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._abort.abort();
    this._poll.dispose();
    Signal.clearData(this);
  }

  /** Read the stream from where the last one stopped; the final status, or null. */
  protected abstract pull(signal: AbortSignal, added: () => void): Promise<LogEnd | null>;

  private async step(): Promise<void> {
    let progressed = false;
    const end = await this.pull(this._abort.signal, () => {
      progressed = true;
      this._appended.emit();
    });
    if (end) {
      this._end = end;
      void this._poll.stop();
      this._ended.emit(end);
    } else if (!progressed) {
      throw new Error('the stream closed with nothing new'); // the poll backs off
    }
  }
}

export class LogFollower extends Follower {
  readonly buffer = new LogBuffer();
  private _offset = 0;

  constructor(id: string) {
    super(id, 'log');
  }

  protected pull(signal: AbortSignal, added: () => void): Promise<LogEnd | null> {
    return followLogs(
      this.id,
      this._offset,
      chunk => {
        this.buffer.append(chunk.text, chunk.stream);
        this._offset = chunk.next;
        added();
      },
      signal
    );
  }
}

/** One series as growing columns (typed arrays, doubled when full). */
export class Column {
  steps = new Float64Array(256);
  values = new Float64Array(256);
  length = 0;

  push(steps: number[], values: number[]): void {
    const need = this.length + steps.length;
    if (need > this.steps.length) {
      const size = Math.max(need, this.steps.length * 2);
      const grow = (a: Float64Array) => {
        const b = new Float64Array(size);
        b.set(a.subarray(0, this.length));
        return b;
      };
      this.steps = grow(this.steps);
      this.values = grow(this.values);
    }
    this.steps.set(steps, this.length);
    this.values.set(values, this.length);
    this.length = need;
  }
}

export class MetricsFollower extends Follower {
  readonly series = new Map<string, Column>();
  private _since = '';

  constructor(id: string) {
    super(id, 'metrics');
  }

  /** Add a page of points (from the stream, or fetched some other way). */
  add(page: Pick<MetricsPage, 'series'>): void {
    for (const [name, s] of Object.entries(page.series)) {
      let column = this.series.get(name);
      if (!column) {
        column = new Column();
        this.series.set(name, column);
      }
      column.push(s.steps, s.values);
    }
  }

  protected pull(signal: AbortSignal, added: () => void): Promise<LogEnd | null> {
    return followMetrics(
      this.id,
      this._since,
      page => {
        this.add(page);
        this._since = page.next;
        added();
      },
      signal
    );
  }
}
