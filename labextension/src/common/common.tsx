// common/: what every feature's views share: these small pieces (common.tsx), counts and
// reasons in words (words.ts), the form field pieces (fields.tsx) and the base of the stream
// followers (follow.ts).
//
// Small pieces the views share: formatting, the status badge, the progress bar, the error
// note, and the hook that re-renders a component when a model emits its `changed` signal.
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { ISignal } from '@lumino/signaling';
import * as React from 'react';

import { Job, Status } from '../api';
import { seconds } from '../jobs/table';

/** Re-render whenever `signal` is emitted (connected while mounted). */
export function useSignal(signal: ISignal<unknown, unknown> | null | undefined): void {
  const [, setTick] = React.useState(0);
  React.useEffect(() => {
    if (!signal) {
      return;
    }
    const slot = () => setTick(t => t + 1);
    signal.connect(slot);
    return () => {
      signal.disconnect(slot);
    };
  }, [signal]);
}

export function when(iso: string | null | undefined): string {
  return iso ? new Date(iso).toLocaleString() : '—';
}

/** Seconds as the cell shows them too: m:ss under an hour, XhYYm above (truncated). */
export function clock(seconds: number): string {
  return seconds >= 3600
    ? `${Math.floor(seconds / 3600)}h${String(Math.floor(seconds / 60) % 60).padStart(2, '0')}m`
    : `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, '0')}`;
}

/** How long the job ran, or has been running ("running 0:05"); '—' before it started. */
export function duration(job: Job): string {
  const secs = seconds(job);
  if (secs === null) {
    return '—';
  }
  return job.finished_at ? clock(secs) : `running ${clock(secs)}`;
}

export function Badge({ status }: { status: Status }): JSX.Element {
  return <span className={`jp-JobsBadge jp-mod-${status}`}>{status}</span>;
}

/** A job's progress as a bar with its percentage (a progressbar for assistive technology);
 * nothing when the job does not report it. `value` is the job's `progress` (0..1), which the
 * server reads from its `progress` or `total_steps` series (storage/series.py): those series
 * are this bar, never a chart. */
export function ProgressBar(props: { value: number | null; status: Status; label: string }): JSX.Element | null {
  const { value, status, label } = props;
  if (value === null) {
    return null;
  }
  const percent = Math.round(value * 100);
  return (
    <div
      className={`jp-JobsProgress jp-mod-${status}`}
      role="progressbar"
      aria-label={label}
      aria-valuemin={0}
      aria-valuemax={100}
      aria-valuenow={percent}
      aria-valuetext={`${percent}%`}
    >
      <span className="jp-JobsProgress-track">
        <span className="jp-JobsProgress-fill" style={{ width: `${percent}%` }} />
      </span>
      <span className="jp-JobsProgress-text" aria-hidden="true">
        {percent}%
      </span>
    </div>
  );
}

export function ErrorNote({ error }: { error: string | null }): JSX.Element | null {
  return error ? (
    <div className="jp-JobsError" role="alert">
      {error}
    </div>
  ) : null;
}

/** Asks before a deletion that cannot be undone; true when the user chose Delete. The body is
 * plain text (a job's name is the job's own text: never markup). */
export async function confirmDelete(title: string, body: string): Promise<boolean> {
  const result = await showDialog({ title, body, buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })] });
  return result.button.accept;
}

/** Asks before jobs are deleted, naming them and what goes with them (a few names, then a count). */
export function confirmDeleteJobs(names: string[]): Promise<boolean> {
  const n = names.length;
  const named = names.slice(0, 5).map(name => `“${name}”`).join(', ') + (n > 5 ? ` and ${n - 5} more` : '');
  const body = n === 1
    ? `Delete job ${named}? Its log and artifacts are deleted with it; this cannot be undone.`
    : `Delete ${n} jobs (${named})? Their logs and artifacts are deleted with them; this cannot be undone.`;
  return confirmDelete(n === 1 ? 'Delete job' : `Delete ${n} jobs`, body);
}
