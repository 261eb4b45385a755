// The sidebar's state, out of React: the open view (the compact list of jobs, the list of
// workflow runs (and the named workflows), the schedules, the datasets, the models, the deployments, the quick form, or the form of a new schedule), the lists,
// with the running jobs' progress (in the page of jobs itself). A job opens in its own main-area tab. Models emit
// `changed`; the views re-render on it (common/common.tsx).
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { errorMessage, Job, Schemas, SpecInput, WorkflowDefinitionSummary } from '../api';
import { MODELS } from '../datasets/kind';
import { DatasetsModel } from '../datasets/model';
import { DeploymentsModel } from '../deployments/model';
import { jobsApi } from '../jobs/api';
import { SchedulesModel } from '../schedules/model';
import { definitionsApi, workflowsApi } from '../workflows/api';

/** What a new job's form starts with: a few fields ("Run as Job", "New job") or a whole spec
 * ("Edit and resubmit"). */
export type Draft = Partial<SpecInput>;

/** A schedule's job, as a submission body (ScheduleInput.spec). */
export type ScheduleSpec = Record<string, unknown>;

export type View =
  | { kind: 'list' }
  | { kind: 'runs' }
  | { kind: 'schedules' }
  | { kind: 'datasets' }
  | { kind: 'models' }
  | { kind: 'deployments' }
  | { kind: 'form'; draft: Draft }
  /** A new schedule of `spec`; Cancel goes `back` (the job form it came from), else to the list. */
  | { kind: 'new-schedule'; spec: ScheduleSpec; back?: View };

/** The views that are forms: nothing to poll while they are open. */
function isForm(view: View): boolean {
  return view.kind === 'form' || view.kind === 'new-schedule';
}

export type RunSummary = Schemas['WorkflowRunSummary'];

const PAGE = 50;

/** Which view is open, the job list with its filters, the workflow runs, the schedules, the datasets, the models and the deployments.
 * The open list is polled only while the panel shows it, and polls back off after errors. */
export class JobsModel {
  readonly poll: Poll;
  readonly schedules = new SchedulesModel();
  readonly datasets = new DatasetsModel();
  readonly models = new DatasetsModel(MODELS);
  readonly deployments = new DeploymentsModel();
  private _view: View = { kind: 'list' };
  private _jobs: Job[] = [];
  private _runs: RunSummary[] = [];
  private _definitions: WorkflowDefinitionSummary[] = [];
  private _nextCursor: number | null = null;
  private _status = '';
  private _project = '';
  private _error: string | null = null;
  private _generation = 0;
  private _disposed = false;
  private readonly _changed = new Signal<JobsModel, void>(this);

  /** `visible` says whether the panel is on screen; `openJob`, `openRun` and
   * `openDefinition` (a named workflow's page) open tabs; `openNotebook` opens a kernel job's
   * notebook. */
  constructor(
    visible: () => boolean,
    readonly openJob: (id: string) => void,
    readonly openRun: (id: string) => void,
    readonly openNotebook?: (path: string) => void,
    readonly openDefinition?: (name: string) => void
  ) {
    this.poll = new Poll({
      factory: () => this.refreshView(),
      frequency: { interval: 2000, backoff: true, max: 30000 },
      standby: () => !visible() || isForm(this._view) || 'when-hidden',
      name: 'jupyter-jobs:list'
    });
  }

  get changed(): ISignal<JobsModel, void> {
    return this._changed;
  }
  get view(): View {
    return this._view;
  }
  get jobs(): readonly Job[] {
    return this._jobs;
  }
  get runs(): readonly RunSummary[] {
    return this._runs;
  }
  /** The named workflows, each with its newest spec version. */
  get definitions(): readonly WorkflowDefinitionSummary[] {
    return this._definitions;
  }
  get nextCursor(): number | null {
    return this._nextCursor;
  }
  get status(): string {
    return this._status;
  }
  get project(): string {
    return this._project;
  }
  get error(): string | null {
    return this._error;
  }
  get isDisposed(): boolean {
    return this._disposed;
  }

  get filtered(): boolean {
    return !!(this._status || this._project);
  }

  open(view: View): void {
    this._view = view;
    this._changed.emit();
    if (!isForm(view)) {
      void this.poll.refresh();
    }
  }

  /** The open list, fetched again. */
  private refreshView(): Promise<void> {
    switch (this._view.kind) {
      case 'runs':
        return this.refreshRuns();
      case 'schedules':
        return this.schedules.refresh();
      case 'datasets':
        return this.datasets.refresh();
      case 'models':
        return this.models.refresh();
      case 'deployments':
        return this.deployments.refresh();
      default:
        return this.refresh();
    }
  }

  /** The first page again (newest first), keeping older pages already loaded. A failure is
   * shown and rethrown, so the poll backs off. */
  async refresh(): Promise<void> {
    const generation = ++this._generation;
    try {
      const page = await jobsApi.list({ status: this._status, project: this._project, limit: PAGE });
      if (generation !== this._generation) {
        return; // the filters changed meanwhile: a newer request answers
      }
      const oldest = page.jobs.length ? page.jobs[page.jobs.length - 1].created_at ?? '' : null;
      const seen = new Set(page.jobs.map(j => j.id));
      const older = oldest === null ? [] : this._jobs.filter(j => !seen.has(j.id) && (j.created_at ?? '') < oldest);
      this._jobs = [...page.jobs, ...older];
      if (!older.length) {
        this._nextCursor = page.next_cursor;
      }
      this._error = null;
    } catch (error) {
      this._error = errorMessage(error);
      throw error;
    } finally {
      this._changed.emit();
    }
  }

  /** The named workflows and the newest workflow runs (their statuses and counts move while
   * they run). */
  async refreshRuns(): Promise<void> {
    try {
      const [runs, definitions] = await Promise.all([workflowsApi.workflows(), definitionsApi.list()]);
      this._runs = runs.workflows;
      this._definitions = definitions.workflows;
      this._error = null;
    } catch (error) {
      this._error = errorMessage(error);
      throw error;
    } finally {
      this._changed.emit();
    }
  }

  async more(): Promise<void> {
    if (!this._nextCursor) {
      return;
    }
    try {
      const page = await jobsApi.list({ status: this._status, project: this._project, limit: PAGE, cursor: this._nextCursor });
      this._jobs = [...this._jobs, ...page.jobs];
      this._nextCursor = page.next_cursor;
      this._error = null;
    } catch (error) {
      this._error = errorMessage(error);
    }
    this._changed.emit();
  }

  setFilter(status: string, project: string): void {
    this._status = status;
    this._project = project;
    this._jobs = [];
    this._changed.emit();
    void this.poll.refresh();
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this.poll.dispose();
    this.schedules.dispose();
    this.datasets.dispose();
    this.models.dispose();
    this.deployments.dispose();
    Signal.clearData(this);
  }
}
