// A job's log, followed as it is written (NDJSON with follow=true) into a LogBuffer.
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { followLogs, LogEnd } from './api';
import { LogBuffer } from './logview';

/** Streams a job's log until its final status arrives. A dropped stream (server restart, idle
 * proxy) resumes from the last offset a second later; failures and streams that bring nothing
 * new back off (up to 30 s). */
export class LogFollower {
  readonly buffer = new LogBuffer();
  private _offset = 0;
  private _end: LogEnd | null = null;
  private _disposed = false;
  private readonly _abort = new AbortController();
  private readonly _poll: Poll;
  private readonly _appended = new Signal<LogFollower, void>(this);
  private readonly _ended = new Signal<LogFollower, LogEnd>(this);

  constructor(readonly id: string) {
    this._poll = new Poll({
      factory: () => this.follow(),
      frequency: { interval: 1000, backoff: true, max: 30000 },
      standby: 'never',
      name: `jupyter-jobs:log-${id}`
    });
  }

  /** Emitted after text was added to the buffer. */
  get appended(): ISignal<LogFollower, void> {
    return this._appended;
  }
  /** Emitted once, with the job's final status, when the log is complete. */
  get ended(): ISignal<LogFollower, LogEnd> {
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

  private async follow(): Promise<void> {
    const start = this._offset;
    const end = await followLogs(
      this.id,
      this._offset,
      chunk => {
        this.buffer.append(chunk.text, chunk.stream);
        this._offset = chunk.next;
        this._appended.emit();
      },
      this._abort.signal
    );
    if (end) {
      this._end = end;
      void this._poll.stop();
      this._ended.emit(end);
    } else if (this._offset === start) {
      throw new Error('the log stream closed with nothing new'); // the poll backs off
    }
  }
}
