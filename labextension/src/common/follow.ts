// Following a job as it runs: the resumable NDJSON stream that ends with the job's final
// status, shared by the log (logs/follow.ts: into a LogBuffer) and the metrics
// (metrics/follow.ts: into growing columns).
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { LogEnd } from '../api';

/** Streams until the final status arrives. A dropped stream (server restart, idle proxy)
 * resumes a second later from where it stopped; failures and streams that bring nothing new
 * back off (up to 30 s). */
export abstract class Follower {
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
