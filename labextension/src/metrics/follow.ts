// Following a job's metrics as they arrive, into growing columns (the stream: common/follow.ts).
import { LogEnd, MetricsPage } from '../api';
import { Follower } from '../common/follow';
import { followMetrics } from './api';

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
