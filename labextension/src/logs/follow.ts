// Following a job's log as it is written, into a LogBuffer (the stream: common/follow.ts).
import { LogEnd } from '../api';
import { Follower } from '../common/follow';
import { followLogs } from './api';
import { LogBuffer } from './logview';

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
