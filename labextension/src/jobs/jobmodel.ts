// One job's state for its detail view: the record, its artifacts and its log.
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { Artifact, errorMessage, isTerminal, Job } from '../api';
import { artifactsApi } from '../artifacts/api';
import { LogFollower } from '../logs/follow';
import { MetricsFollower } from '../metrics/follow';
import { jobsApi } from './api';

/** One job: its record, polled (GET /jobs/{id}) with backoff until it ends; its artifacts,
 * fetched when its status changes; and its log, streamed. */
export class JobModel {
  readonly log: LogFollower;
  private _metrics: MetricsFollower | null = null;
  private _job: Job | null = null;
  private _artifacts: Artifact[] = [];
  private _folder: string | null = null;
  private _error: string | null = null;
  private _artifactsAsked = 0;
  private _disposed = false;
  private readonly _poll: Poll;
  private readonly _changed = new Signal<JobModel, void>(this);

  constructor(readonly id: string) {
    this._poll = new Poll({
      factory: () => this.load(),
      frequency: { interval: 1000, backoff: true, max: 30000 },
      standby: 'when-hidden',
      name: `jupyter-jobs:job-${id}`
    });
    this.log = new LogFollower(id);
    // the log's last line is the final status: fetch the final record now, unless it is here
    this.log.ended.connect(() => {
      if (!this._job || !isTerminal(this._job.status)) {
        void this.refresh();
      }
    });
  }

  /** The job's series, followed from the first time they are asked for. */
  get metrics(): MetricsFollower {
    return (this._metrics ??= new MetricsFollower(this.id));
  }

  get changed(): ISignal<JobModel, void> {
    return this._changed;
  }
  get job(): Job | null {
    return this._job;
  }
  get artifacts(): readonly Artifact[] {
    return this._artifacts;
  }
  /** The artifacts folder relative to the server's root, when the file browser can reach it. */
  get folder(): string | null {
    return this._folder;
  }
  get error(): string | null {
    return this._error;
  }
  get isDisposed(): boolean {
    return this._disposed;
  }

  /** Fetch the record now (restarting the poll if it had stopped). */
  refresh(): Promise<void> {
    return this._poll.refresh();
  }

  /** A newer record of this job (from polling, or returned by an action such as cancel). */
  update(job: Job): void {
    const statusChanged = this._job?.status !== job.status;
    this._job = job;
    this._error = null;
    if (isTerminal(job.status)) {
      void this._poll.stop();
    }
    if (statusChanged) {
      void this.loadArtifacts();
    }
    this._changed.emit();
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._poll.dispose();
    this.log.dispose();
    this._metrics?.dispose();
    Signal.clearData(this);
  }

  private async load(): Promise<void> {
    let job: Job;
    try {
      job = await jobsApi.get(this.id);
    } catch (error) {
      this.fail(error);
      throw error; // the poll backs off
    }
    if (!this._disposed) {
      this.update(job);
    }
  }

  private async loadArtifacts(): Promise<void> {
    const asked = ++this._artifactsAsked;
    try {
      const reply = await artifactsApi.artifacts(this.id);
      if (!this._disposed && asked === this._artifactsAsked) {
        this._artifacts = reply.artifacts;
        this._folder = reply.folder;
        this._changed.emit();
      }
    } catch (error) {
      this.fail(error);
    }
  }

  private fail(error: unknown): void {
    if (!this._disposed) {
      this._error = errorMessage(error);
      this._changed.emit();
    }
  }
}
