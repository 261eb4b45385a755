// The jobs page's data: every job of the history in memory (loaded page by page, newest
// first), kept live by polling what can still change, and a view of it (filters, search,
// sort) recomputed only when one of those changes. 10,000 jobs are searched in a few ms.
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { ApiError, errorMessage, isTerminal, Job, Status } from '../api';
import { notebookOf } from '../kernels/kernels';
import { jobsApi } from './api';
import { whatItRuns } from './copy';

export type SortKey = 'name' | 'status' | 'project' | 'backend' | 'gpus' | 'created' | 'duration';

export interface Filters {
  status: Status | '';
  backend: string;
  project: string;
  search: string;
}

/** The whole history is loaded up to this many jobs; past it, search asks the server. */
const MAX_LOADED = 50_000;
const PAGE = 500;

export function jobName(job: Job): string {
  const notebook = notebookOf(job);
  if (notebook) {
    return `Kernel of ${notebook}`; // a notebook's kernel: its notebook, as the file browser names it
  }
  if (!job.spec.name && job.spec.cell) {
    // a cell job: its first line of code, not the %%job line every cell starts with
    const code = job.spec.cell.split('\n').slice(1).find(line => line.trim());
    return code?.trim() || job.spec.cell.split('\n')[0];
  }
  return job.spec.name || whatItRuns(job.spec);
}

/** Seconds the job ran (or has run so far); null before it started. */
export function seconds(job: Job, now = Date.now()): number | null {
  if (!job.started_at) {
    return null;
  }
  const end = job.finished_at ? Date.parse(job.finished_at) : now;
  return Math.max(0, Math.floor((end - Date.parse(job.started_at)) / 1000));
}

function haystack(job: Job): string {
  return [job.id, job.spec.name || '', whatItRuns(job.spec), notebookOf(job) || '', ...(job.spec.tags || [])].join('\n').toLowerCase();
}

const SORTERS: Record<SortKey, (a: Job, b: Job) => number> = {
  name: (a, b) => jobName(a).localeCompare(jobName(b)),
  status: (a, b) => a.status.localeCompare(b.status),
  project: (a, b) => a.project.localeCompare(b.project),
  backend: (a, b) => a.backend.localeCompare(b.backend),
  gpus: (a, b) => (a.spec.resources?.gpus ?? 0) - (b.spec.resources?.gpus ?? 0),
  created: (a, b) => a.created_at.localeCompare(b.created_at),
  duration: (a, b) => (seconds(a) ?? -1) - (seconds(b) ?? -1)
};

export class JobsTable {
  readonly poll: Poll;
  private readonly _jobs = new Map<string, Job>();
  private readonly _search = new Map<string, string>();
  private _rows: Job[] = [];
  private _dirty = true;
  private _filters: Filters = { status: '', backend: '', project: '', search: '' };
  private _sort: { key: SortKey; descending: boolean } = { key: 'created', descending: true };
  private _selected = new Set<string>();
  private _complete = false;
  private _loading = true;
  private _error: string | null = null;
  private _disposed = false;
  private readonly _changed = new Signal<JobsTable, void>(this);

  constructor(visible: () => boolean) {
    this.poll = new Poll({
      factory: () => this.update(),
      frequency: { interval: 2000, backoff: true, max: 30000 },
      standby: () => !visible() || 'when-hidden',
      name: 'jupyter-jobs:table'
    });
    void this.loadAll();
  }

  get changed(): ISignal<JobsTable, void> {
    return this._changed;
  }
  get filters(): Filters {
    return this._filters;
  }
  get sort(): { key: SortKey; descending: boolean } {
    return this._sort;
  }
  get selected(): ReadonlySet<string> {
    return this._selected;
  }
  get loading(): boolean {
    return this._loading;
  }
  get error(): string | null {
    return this._error;
  }
  get size(): number {
    return this._jobs.size;
  }
  get isDisposed(): boolean {
    return this._disposed;
  }
  /** Values seen in the history, for the filter menus. */
  values(key: 'project' | 'backend'): string[] {
    return [...new Set([...this._jobs.values()].map(j => j[key]))].sort();
  }
  job(id: string): Job | undefined {
    return this._jobs.get(id);
  }

  /** The jobs the filters, search and sort select, in order. */
  get rows(): readonly Job[] {
    if (this._dirty) {
      const { status, backend, project, search } = this._filters;
      const needle = search.trim().toLowerCase();
      const rows: Job[] = [];
      for (const job of this._jobs.values()) {
        if ((status && job.status !== status) || (backend && job.backend !== backend) || (project && job.project !== project)) {
          continue;
        }
        if (needle && !this._search.get(job.id)!.includes(needle)) {
          continue;
        }
        rows.push(job);
      }
      const compare = SORTERS[this._sort.key];
      const sign = this._sort.descending ? -1 : 1;
      rows.sort((a, b) => sign * compare(a, b) || b.created_at.localeCompare(a.created_at));
      this._rows = rows;
      this._dirty = false;
    }
    return this._rows;
  }

  setFilters(filters: Partial<Filters>): void {
    this._filters = { ...this._filters, ...filters };
    this.touch();
    if (filters.search && !this._complete) {
      void this.searchServer(filters.search);
    }
  }

  sortBy(key: SortKey): void {
    this._sort = { key, descending: this._sort.key === key ? !this._sort.descending : key === 'created' || key === 'duration' };
    this.touch();
  }

  toggle(id: string, on?: boolean): void {
    if (on ?? !this._selected.has(id)) {
      this._selected.add(id);
    } else {
      this._selected.delete(id);
    }
    this._changed.emit();
  }

  /** Select every row shown (or none, when all of them are selected already). */
  toggleAll(): void {
    const rows = this.rows;
    const all = rows.length > 0 && rows.every(j => this._selected.has(j.id));
    this._selected = all ? new Set() : new Set(rows.map(j => j.id));
    this._changed.emit();
  }

  /** Run `action` on each selected job; returns the failures as readable lines. */
  async forSelected(action: (id: string) => Promise<Job | void>): Promise<string[]> {
    const ids = [...this._selected];
    const results = await Promise.allSettled(ids.map(action));
    const failures: string[] = [];
    results.forEach((result, i) => {
      if (result.status === 'rejected') {
        failures.push(`${ids[i]}: ${errorMessage(result.reason)}`);
      } else if (result.value) {
        this.put(result.value);
      } else {
        this.drop(ids[i]);
      }
    });
    this.touch();
    return failures;
  }

  put(job: Job): void {
    this._jobs.set(job.id, job);
    this._search.set(job.id, haystack(job));
    this._dirty = true;
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this.poll.dispose();
    Signal.clearData(this);
  }

  private drop(id: string): void {
    this._jobs.delete(id);
    this._search.delete(id);
    this._selected.delete(id);
    this._dirty = true;
  }

  private touch(): void {
    this._dirty = true;
    this._changed.emit();
  }

  /** The history, newest first, a page at a time: the first rows show after one request. */
  private async loadAll(): Promise<void> {
    let cursor: number | null | undefined = undefined;
    try {
      do {
        const page = await jobsApi.list({ limit: PAGE, ...(cursor ? { cursor } : {}) });
        if (this._disposed) {
          return;
        }
        page.jobs.forEach(j => this.put(j as Job));
        cursor = page.next_cursor;
        this._loading = !!cursor && this._jobs.size < MAX_LOADED;
        this._error = null;
        this.touch();
      } while (cursor && this._jobs.size < MAX_LOADED);
      this._complete = !cursor;
    } catch (error) {
      this._loading = false;
      this._error = errorMessage(error);
      this.touch();
    }
  }

  /** Past MAX_LOADED jobs, what the search matches beyond those loaded comes from the server. */
  private async searchServer(text: string): Promise<void> {
    try {
      const page = await jobsApi.list({ q: text, limit: PAGE });
      page.jobs.forEach(j => this.put(j as Job));
      this.touch();
    } catch (error) {
      this._error = errorMessage(error);
      this.touch();
    }
  }

  /** The newest jobs (new ones appear) and every job that may still change. */
  private async update(): Promise<void> {
    try {
      const [newest, active] = await Promise.all([
        jobsApi.list({ limit: 100 }),
        jobsApi.list({ status: 'queued,running', limit: PAGE })
      ]);
      const seen = new Set<string>();
      for (const job of [...newest.jobs, ...active.jobs] as Job[]) {
        seen.add(job.id);
        this.put(job);
      }
      // jobs that were active here and are not any more: their final record
      const ended = [...this._jobs.values()].filter(j => !isTerminal(j.status) && !seen.has(j.id)).slice(0, 50);
      await Promise.all(
        ended.map(j =>
          jobsApi.get(j.id).then(
            job => this.put(job),
            error => (error as ApiError).status === 404 && this.drop(j.id)
          )
        )
      );
      this._error = null;
    } catch (error) {
      this._error = errorMessage(error);
      throw error;
    } finally {
      this.touch();
    }
  }
}
