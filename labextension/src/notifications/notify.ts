// notifications/: the notifications of jobs' ends (notify.ts).
//
// Notifications when a job ends that this browser started (the panel's form, Rerun: origin
// browser:<id>) or one of the server's kernels started (the %job magic: kernel:<id>); with
// `notifyAllJobs`, every job and every workflow run. One poll of GET /jobs?origin=... (and
// /workflows); a JupyterLab notification per end, with "Open"; with `browserNotifications`,
// also the browser's own while this page is hidden. Nothing is said of what ended before it
// was first watched, and nothing twice; nor of a job someone here already watches (its tab on
// screen, the `%%job` cell that follows it, a cancel from this browser: watch.ts).
import { Notification } from '@jupyterlab/apputils';
import { Poll } from '@lumino/polling';

import { isTerminal, Job, Schemas, Status } from '../api';
import { jobsApi } from '../jobs/api';
import { jobName } from '../jobs/table';
import { workflowsApi } from '../workflows/api';
import { watching, Watching } from './watch';

export interface NotifySettings {
  /** Every job and workflow run, not only those this browser or its kernels started. */
  notifyAllJobs: boolean;
  /** Also the browser's own notifications, while the page is hidden. */
  browserNotifications: boolean;
}

/** What the notifier asks of the application around it. */
export interface NotifyOptions {
  /** Who counts as "this browser": browser:<id> and kernel:<id> of its kernels. */
  origins: () => string[];
  openJob: (id: string) => void;
  openRun: (id: string) => void;
  /** Who watches which job here (default: the page's registry, which the views report to). */
  watching?: Watching;
}

type Run = Schemas['WorkflowRunSummary'];

interface Watched {
  id: string;
  status: string;
  created_at: string;
}

/** The server takes at most this many origins in one query. */
const MAX_ORIGINS = 100;
/** Every job of the scope is in a page this long when it ends, unless more than this many end
 * between two polls. */
const PAGE = 50;
const ALL = '*';

/** Which items of successive polls ended since they were first watched. Each scope (an origin,
 * or every job) is marked when it is first polled: what had ended by then is not news. Later,
 * an item that ended is news if it was seen before it ended, or if it was created after the
 * mark (a page is newest first, so an older item that comes into view, because newer ones
 * were deleted, is no news). */
export class Ends<T extends Watched> {
  private readonly _running = new Set<string>();
  private readonly _handled = new Set<string>();
  private readonly _marks = new Map<string, string>();

  /** The items of this poll that are news; `scopes` are what it asked for. */
  ended(items: readonly T[], scopes: string[], scopeOf: (item: T) => string): T[] {
    const news: T[] = [];
    for (const item of items) {
      if (!isTerminal(item.status as Status)) {
        this._running.add(item.id);
      } else if (!this._handled.has(item.id)) {
        this._handled.add(item.id);
        const mark = this._marks.get(scopeOf(item));
        if (this._running.delete(item.id) || (mark !== undefined && item.created_at > mark)) {
          news.push(item);
        }
      }
    }
    const newest = items.reduce((max, item) => (item.created_at > max ? item.created_at : max), '');
    for (const scope of scopes) {
      if (!this._marks.has(scope)) {
        this._marks.set(scope, newest);
      }
    }
    return news;
  }
}

const KIND: Record<string, 'success' | 'error' | 'warning'> = {
  succeeded: 'success',
  failed: 'error',
  cancelled: 'warning',
  skipped: 'warning'
};

export class EndNotifier {
  private readonly _poll: Poll;
  private readonly _jobs = new Ends<Job>();
  private readonly _runs = new Ends<Run>();
  private _settings: NotifySettings = { notifyAllJobs: false, browserNotifications: false };
  private readonly _watching: Watching;

  constructor(private readonly options: NotifyOptions) {
    this._watching = options.watching ?? watching;
    this._poll = new Poll({
      factory: () => this.check(),
      frequency: { interval: 3000, backoff: true, max: 60000 },
      // hidden, the page still polls when the browser's own notifications may tell
      standby: () => (this._settings.browserNotifications ? 'never' : 'when-hidden'),
      name: 'jupyter-jobs:notify'
    });
  }

  get isDisposed(): boolean {
    return this._poll.isDisposed;
  }

  set settings(settings: NotifySettings) {
    const asked = settings.browserNotifications && !this._settings.browserNotifications;
    this._settings = settings;
    if (asked && 'Notification' in window && window.Notification.permission === 'default') {
      void window.Notification.requestPermission();
    }
    void this._poll.refresh();
  }

  dispose(): void {
    this._poll.dispose();
  }

  /** One poll: the jobs (and, for all of them, the workflow runs) that ended since the last. */
  private async check(): Promise<void> {
    if (this._settings.notifyAllJobs) {
      const [jobs, runs] = await Promise.all([jobsApi.list({ limit: PAGE }), workflowsApi.workflows()]);
      // a workflow run's jobs are told of by the run's end
      this._jobs.ended(jobs.jobs, [ALL], () => ALL).filter(j => !j.workflow).forEach(j => this.tellJob(j));
      this._runs.ended(runs.workflows, [ALL], () => ALL).forEach(r => this.tellRun(r));
      return;
    }
    const origins = [...new Set(this.options.origins())].slice(0, MAX_ORIGINS);
    const page = await jobsApi.list({ origin: origins.join(','), limit: PAGE });
    this._jobs.ended(page.jobs, origins, job => job.origin ?? '').forEach(j => this.tellJob(j));
  }

  private tellJob(job: Job): void {
    if (this._watching.why(job.id)) {
      return; // its end is on screen already, or the user cancelled it: a toast would be noise
    }
    const message = `Job “${jobName(job)}” ${job.status}${job.message ? `: ${job.message}` : ''}`;
    this.tell(message, job.status, job.id, () => this.options.openJob(job.id));
  }

  private tellRun(run: Run): void {
    const message = `Workflow run “${run.name}” ${run.status}${run.message ? `: ${run.message}` : ''}`;
    this.tell(message, run.status, run.id, () => this.options.openRun(run.id));
  }

  private tell(message: string, status: string, tag: string, open: () => void): void {
    const type = KIND[status] ?? 'info';
    Notification.emit(message, type, {
      autoClose: type === 'error' ? false : 10000,
      actions: [{ label: 'Open', caption: 'Open it in a tab', callback: open }]
    });
    if (this._settings.browserNotifications && document.hidden && 'Notification' in window && window.Notification.permission === 'granted') {
      const shown = new window.Notification('Jupyter Jobs', { body: message, tag });
      shown.onclick = () => {
        window.focus();
        open();
        shown.close();
      };
    }
  }
}
