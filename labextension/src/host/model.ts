// The host view's state: the latest reply, read every few seconds while the view is on screen
// (a Poll that stands by when the tab or the browser is hidden).
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { errorMessage } from '../api';
import { HostReply, hostApi } from './api';

export class HostModel {
  readonly poll: Poll;
  private _host: HostReply | null = null;
  private _error: string | null = null;
  private readonly _changed = new Signal<HostModel, void>(this);

  constructor(visible: () => boolean, read: () => Promise<HostReply> = hostApi.read) {
    this.poll = new Poll({
      factory: async () => {
        try {
          this._host = await read();
          this._error = null;
        } catch (error) {
          this._error = errorMessage(error);
        }
        this._changed.emit();
      },
      frequency: { interval: 3000, backoff: true, max: 30000 },
      standby: () => !visible() || 'when-hidden',
      name: 'jupyter-jobs:host'
    });
  }

  get changed(): ISignal<HostModel, void> {
    return this._changed;
  }
  get host(): HostReply | null {
    return this._host;
  }
  get error(): string | null {
    return this._error;
  }
  refresh(): void {
    void this.poll.refresh();
  }
  dispose(): void {
    this.poll.dispose();
    Signal.clearData(this);
  }
}
