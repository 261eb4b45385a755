// The Schedules view's state, out of React: the schedules (newest first), the one expanded
// (its recent jobs are listed), and the actions on one (pause, resume, delete). The sidebar's
// poll (sidebar/model.ts) refreshes it while the view is on screen.
import { errorMessage, Job, Schedule } from '../api';
import { ListModel } from '../common/listmodel';
import { jobsApi } from '../jobs/api';
import { schedulesApi } from './api';

/** How many of the expanded schedule's jobs are listed. */
const RECENT = 10;

export class SchedulesModel extends ListModel {
  private _schedules: Schedule[] = [];
  private _expanded: string | null = null;
  private _jobs: Job[] = [];

  get schedules(): readonly Schedule[] {
    return this._schedules;
  }
  /** The schedule whose next times and recent jobs are shown. */
  get expanded(): string | null {
    return this._expanded;
  }
  /** The newest jobs the expanded schedule started. */
  get jobs(): readonly Job[] {
    return this._jobs;
  }

  /** The schedules, and the expanded one's recent jobs. A failure is shown and rethrown, so
   * the poll backs off. */
  refresh(): Promise<void> {
    const expanded = this._expanded;
    const both = () =>
      Promise.all([schedulesApi.schedules(), expanded ? jobsApi.list({ schedule: expanded, limit: RECENT }) : null]);
    return this.fetch(both, ([page, jobs]) => {
      this._schedules = page.schedules;
      this._jobs = jobs?.jobs ?? [];
    });
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
    this.emit();
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
    this.supersede();
    try {
      await action();
      this.setError(null);
    } catch (error) {
      this.setError(errorMessage(error));
    }
    this.emit();
  }
}
