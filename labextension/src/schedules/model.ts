// The Schedules view's state, out of React: the schedules (newest first), the one expanded
// (its recent jobs are listed), and the actions on one (pause, resume, delete). The sidebar's
// poll (sidebar/model.ts) refreshes it while the view is on screen.
import { ISignal, Signal } from '@lumino/signaling';

import { errorMessage, Job, Schedule } from '../api';
import { jobsApi } from '../jobs/api';
import { schedulesApi } from './api';

/** How many of the expanded schedule's jobs are listed. */
const RECENT = 10;

export class SchedulesModel {
  private _schedules: Schedule[] = [];
  private _loaded = false;
  private _expanded: string | null = null;
  private _jobs: Job[] = [];
  private _error: string | null = null;
  private _generation = 0;
  private readonly _changed = new Signal<SchedulesModel, void>(this);

  get changed(): ISignal<SchedulesModel, void> {
    return this._changed;
  }
  get schedules(): readonly Schedule[] {
    return this._schedules;
  }
  /** Whether the list has been fetched once (an empty list before that says nothing). */
  get loaded(): boolean {
    return this._loaded;
  }
  /** The schedule whose next times and recent jobs are shown. */
  get expanded(): string | null {
    return this._expanded;
  }
  /** The newest jobs the expanded schedule started. */
  get jobs(): readonly Job[] {
    return this._jobs;
  }
  get error(): string | null {
    return this._error;
  }

  /** The schedules, and the expanded one's recent jobs. A failure is shown and rethrown, so
   * the poll backs off. */
  async refresh(): Promise<void> {
    const generation = ++this._generation;
    const expanded = this._expanded;
    try {
      const [page, jobs] = await Promise.all([
        schedulesApi.schedules(),
        expanded ? jobsApi.list({ schedule: expanded, limit: RECENT }) : null
      ]);
      if (generation !== this._generation) {
        return; // a newer refresh (another row expanded) answers
      }
      this._schedules = page.schedules;
      this._jobs = jobs?.jobs ?? [];
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

  /** Expand a schedule (or fold it when it is open): its jobs are fetched now. */
  toggle(id: string): void {
    this.expand(this._expanded === id ? null : id);
  }

  expand(id: string | null): void {
    if (id !== this._expanded) {
      this._expanded = id;
      this._jobs = [];
    }
    this._changed.emit();
    this.refresh().catch(() => undefined); // shown as the view's error
  }

  async pause(id: string, paused: boolean): Promise<void> {
    await this.act(async () => this.replace(await schedulesApi.scheduleAction(id, paused ? 'pause' : 'resume')));
  }

  async remove(id: string): Promise<void> {
    await this.act(async () => {
      await schedulesApi.removeSchedule(id);
      this._schedules = this._schedules.filter(s => s.id !== id);
      if (this._expanded === id) {
        this._expanded = null;
      }
    });
  }

  private replace(schedule: Schedule): void {
    this._schedules = this._schedules.map(s => (s.id === schedule.id ? schedule : s));
  }

  private async act(action: () => Promise<void>): Promise<void> {
    this._generation++; // a refresh under way would bring back the state before the action
    try {
      await action();
      this._error = null;
    } catch (error) {
      this._error = errorMessage(error);
    }
    this._changed.emit();
  }

  dispose(): void {
    Signal.clearData(this);
  }
}
