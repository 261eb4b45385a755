// A notebook's toolbar item for its job kernel: while the kernel's job waits in the queue (the
// notebook says only "starting"), why it waits ("Kernel waiting: waiting for a GPU ...; #2 in
// the queue") and a Cancel button (the kernel's start then fails with the reason, which
// JupyterLab shows); once the kernel runs, where ("GPU 0 · job 1a2b3c"), which opens the job's
// tab. Nothing for an ordinary kernel, and no request then: the queue is read every second only
// while a job kernel starts, the running kernel's job until it is found.
import { ISessionContext } from '@jupyterlab/apputils';
import { ReactWidget } from '@jupyterlab/ui-components';
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';
import * as React from 'react';

import { errorMessage, Job } from '../api';
import { useSignal } from '../common/common';
import { jobsApi } from '../jobs/api';
import { gpusWords, KERNEL_ORIGIN, KERNEL_PREFIX, servesNotebook } from './kernels';

/** What the item shows: nothing, the queued kernel job, or the running one. */
export type KernelState = { kind: 'none' } | { kind: 'waiting'; job: Job | null } | { kind: 'running'; job: Job | null };

/** The kernel's display statuses while it is not up yet. */
const STARTING = new Set(['starting', 'initializing', 'restarting', 'autorestarting', 'connecting', 'unknown']);
/** Looks for the running kernel's job this many times (a second apart), then gives up. */
const LOOKS = 10;

/** The job kernel of one notebook, followed through its session context. */
export class KernelWatch {
  private _state: KernelState = { kind: 'none' };
  private _poll: Poll | null = null;
  private _key = 'none:';
  private _looks = 0;
  private _error: string | null = null;
  private _cancelling = false;
  private _disposed = false;
  private readonly _changed = new Signal<KernelWatch, void>(this);

  /** `path` is the notebook's path relative to the server's root (it follows a rename). */
  constructor(
    readonly session: ISessionContext,
    private readonly path: () => string
  ) {
    session.statusChanged.connect(this.update, this);
    session.kernelChanged.connect(this.update, this);
    session.connectionStatusChanged.connect(this.update, this);
    session.sessionChanged.connect(this.update, this);
    session.specsManager.specsChanged.connect(this.update, this);
    this.update();
  }

  get changed(): ISignal<KernelWatch, void> {
    return this._changed;
  }
  get state(): KernelState {
    return this._state;
  }
  get error(): string | null {
    return this._error;
  }
  get cancelling(): boolean {
    return this._cancelling;
  }
  get isDisposed(): boolean {
    return this._disposed;
  }
  /** Whether the notebook's kernel (or the one it is starting) is a job kernel. */
  isJobKernel(): boolean {
    const s = this.session;
    const shown = s.kernelDisplayName; // the kernel being started, else the one running
    if (shown.startsWith(KERNEL_PREFIX)) {
      return true; // the specs are not loaded yet: the name itself
    }
    const specs = s.specsManager.specs?.kernelspecs ?? {};
    return Object.values(specs).some(spec => spec?.name.startsWith(KERNEL_PREFIX) && spec.display_name === shown);
  }

  /** Cancels the queued kernel job: the kernel's start fails, saying so. */
  async cancel(): Promise<void> {
    const { job } = this._state as { job?: Job | null };
    if (!job) {
      return;
    }
    this._cancelling = true;
    this._error = null;
    this._changed.emit();
    try {
      await jobsApi.cancel(job.id);
    } catch (error) {
      this._error = errorMessage(error);
    } finally {
      this._cancelling = false;
      if (!this._disposed) {
        this._changed.emit();
      }
    }
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._poll?.dispose();
    this._poll = null;
    Signal.disconnectReceiver(this);
    Signal.clearData(this);
  }

  /** Where the kernel stands now: what to show, and whether to read the queue. */
  private update(): void {
    if (this._disposed) {
      return;
    }
    const s = this.session;
    const kernel = s.session?.kernel;
    const status = s.kernelDisplayStatus;
    let next: KernelState['kind'] = 'none';
    if (this.isJobKernel()) {
      next = kernel && (status === 'idle' || status === 'busy') ? 'running' : STARTING.has(status) ? 'waiting' : 'none';
    }
    const key = `${next}:${kernel?.id ?? ''}`; // a new kernel is a new job
    if (key !== this._key) {
      this._key = key;
      this._state = next === 'none' ? { kind: 'none' } : { kind: next, job: null };
      this._looks = 0;
      this._error = null;
      this._changed.emit();
    }
    const needed = this._state.kind === 'waiting' || (this._state.kind === 'running' && !this._state.job && this._looks < LOOKS);
    if (needed && !this._poll) {
      this._poll = new Poll({
        factory: () => this.read(),
        frequency: { interval: 1000, backoff: true, max: 10000 },
        standby: 'when-hidden',
        name: 'jupyter-jobs:kernel'
      });
    } else if (!needed && this._poll) {
      this._poll.dispose();
      this._poll = null;
    }
  }

  /** One read of the queue (or of the running kernel jobs). */
  private async read(): Promise<void> {
    const state = this._state;
    if (state.kind === 'none') {
      return;
    }
    const path = this.path();
    const page = await jobsApi.list({ tag: 'kernel', status: state.kind === 'waiting' ? 'queued' : 'running', limit: 100 });
    if (this._disposed || this._state !== state) {
      return; // the kernel moved on meanwhile
    }
    const jobs = page.jobs as Job[];
    let job: Job | null;
    if (state.kind === 'waiting') {
      job = jobs.find(j => servesNotebook(j, path)) ?? null;
    } else {
      const origin = `${KERNEL_ORIGIN}${this.session.session?.kernel?.id ?? ''}`;
      job = jobs.find(j => j.origin === origin) ?? jobs.find(j => servesNotebook(j, path)) ?? null;
      this._looks += 1;
    }
    const same = JSON.stringify([state.job?.id, state.job?.waiting, state.job?.gpus]) === JSON.stringify([job?.id, job?.waiting, job?.gpus]);
    if (!same) {
      this._state = { kind: state.kind, job };
      this._changed.emit();
    }
    if (state.kind === 'running') {
      this.update(); // found (or looked long enough): no more reads
    }
  }
}

function KernelView({ watch, openJob }: { watch: KernelWatch; openJob: (id: string) => void }): JSX.Element | null {
  useSignal(watch.changed);
  const { state, error } = watch;
  if (state.kind === 'none' || !state.job) {
    return null;
  }
  const job = state.job;
  if (state.kind === 'waiting') {
    const why = job.waiting || 'in the queue';
    return (
      <span className="jp-JobsKernelItem-content" data-state="waiting" data-job-id={job.id}>
        <span className="jp-JobsKernelItem-text" title={`This notebook's kernel is job ${job.id}, waiting: ${why}`} role="status">
          Kernel waiting: {why}
        </span>
        <button
          className="jp-JobsKernelItem-cancel"
          disabled={watch.cancelling}
          title={`Cancel job ${job.id}: the kernel does not start`}
          onClick={() => void watch.cancel()}
        >
          {watch.cancelling ? 'Cancelling…' : 'Cancel'}
        </button>
        {error ? (
          <span className="jp-JobsKernelItem-error" role="alert">
            {error}
          </span>
        ) : null}
      </span>
    );
  }
  const where = `${gpusWords(job.gpus)} · job ${job.id}`;
  return (
    <span className="jp-JobsKernelItem-content" data-state="running" data-job-id={job.id}>
      <button
        className="jp-JobsKernelItem-job"
        title={`This notebook's kernel runs as job ${job.id} on ${job.backend}, holding ${gpusWords(job.gpus)}: open the job`}
        onClick={() => openJob(job.id)}
      >
        {where}
      </button>
    </span>
  );
}

/** The toolbar item: hidden while there is nothing to say. */
export class KernelItem extends ReactWidget {
  constructor(
    readonly watch: KernelWatch,
    private readonly openJob: (id: string) => void
  ) {
    super();
    this.addClass('jp-JobsKernelItem');
    const show = () => this.setHidden(watch.state.kind === 'none' || !watch.state.job);
    watch.changed.connect(show);
    show();
  }

  render(): JSX.Element {
    return <KernelView watch={this.watch} openJob={this.openJob} />;
  }

  dispose(): void {
    this.watch.dispose();
    super.dispose();
  }
}
