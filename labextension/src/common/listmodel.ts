// What the sidebar's list models share (schedules, datasets and models, deployments): a `changed`
// signal the views re-render on, whether the list was fetched once, the last error, and fetches
// that count only when nothing newer began meanwhile.
import { ISignal, Signal } from '@lumino/signaling';

import { errorMessage } from '../api';

export class ListModel {
  private _loaded = false;
  private _error: string | null = null;
  private _generation = 0;
  private readonly _changed = new Signal<ListModel, void>(this);

  get changed(): ISignal<ListModel, void> {
    return this._changed;
  }
  /** Whether the list has been fetched once (an empty list before that says nothing). */
  get loaded(): boolean {
    return this._loaded;
  }
  get error(): string | null {
    return this._error;
  }

  /** `fetch`, and its answer kept by `keep`, unless another fetch or an action began meanwhile
   * (its answer is newer). A failure is shown and rethrown, so the poll backs off. */
  protected async fetch<T>(fetch: () => Promise<T>, keep: (answer: T) => void): Promise<void> {
    const generation = ++this._generation;
    try {
      const answer = await fetch();
      if (generation !== this._generation) {
        return;
      }
      keep(answer);
      this._loaded = true;
      this._error = null;
    } catch (error) {
      if (generation === this._generation) {
        this._error = errorMessage(error);
      }
      throw error;
    } finally {
      this._changed.emit();
    }
  }

  /** An action began: a fetch under way would bring back the state before it. */
  protected supersede(): void {
    this._generation++;
  }

  protected setError(error: string | null): void {
    this._error = error;
  }

  protected emit(): void {
    this._changed.emit();
  }

  dispose(): void {
    Signal.clearData(this);
  }
}
