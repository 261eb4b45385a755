// Small pieces the views share: formatting, the status badge, the error note, and the hook
// that re-renders a component when a model emits its `changed` signal.
import { ISignal } from '@lumino/signaling';
import * as React from 'react';

import { Job, Spec, Status } from '../api';
import { seconds } from '../table';

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

export function command(spec: Spec): string {
  return typeof spec.command === 'string' ? spec.command : spec.command.join(' ');
}

export function Badge({ status }: { status: Status }): JSX.Element {
  return <span className={`jp-JobsBadge jp-mod-${status}`}>{status}</span>;
}

export function ErrorNote({ error }: { error: string | null }): JSX.Element | null {
  return error ? (
    <div className="jp-JobsError" role="alert">
      {error}
    </div>
  ) : null;
}
