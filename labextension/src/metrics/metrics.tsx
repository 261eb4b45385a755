// metrics/: a job's metrics: these charts (metrics.tsx, over chart.ts and uPlot), the
// MetricsFollower (follow.ts), the metrics' calls (api.ts), and the live chart of a `%%job`
// cell (renderer.tsx, a MIME renderer).
//
// A job's metrics as live charts: its own series (loss, accuracy...) and its telemetry (CPU,
// memory, GPUs), with log/linear y and smoothing; they update while the job runs. `progress`
// and `total_steps` are no charts: they drive the job's progress bar (common.tsx).
import * as React from 'react';

import { useSignal } from '../common/common';
import { Chart, ChartOptions, Line } from './chart';
import { Column, MetricsFollower } from './follow';

/** Series the service samples, as opposed to those the job reports. */
export function isSystem(name: string): boolean {
  return name === 'cpu.percent' || name === 'memory.rss' || name.startsWith('gpu.');
}

/** Series that say how far the job is: drawn as its progress bar, never as a chart (the
 * server's rule, storage/series.py, turns them into the job's `progress`). */
export function isProgress(name: string): boolean {
  return name === 'progress' || name === 'total_steps';
}

export function formatFor(name: string): ((v: number) => string) | undefined {
  if (name === 'memory.rss' || name.endsWith('.memory_used') || name.endsWith('.memory_total')) {
    return v => (Math.abs(v) >= 2 ** 30 ? `${+(v / 2 ** 30).toPrecision(3)} GB` : `${+(v / 2 ** 20).toPrecision(3)} MB`);
  }
  if (name === 'cpu.percent' || name.endsWith('.util')) {
    return v => `${+v.toPrecision(3)}%`;
  }
  return undefined;
}

export function lineOf(label: string, column: Column): Line {
  return { label, xs: column.steps, ys: column.values, length: column.length };
}

/** One uPlot chart in a React tree: created once, fed new lines and options after. */
export function ChartBox(props: { lines: Line[]; options: ChartOptions; version: number; name: string }): JSX.Element {
  const host = React.useRef<HTMLDivElement>(null);
  const chart = React.useRef<Chart | null>(null);
  React.useEffect(() => {
    chart.current = new Chart(props.lines, props.options);
    host.current!.appendChild(chart.current.node);
    return () => chart.current?.dispose();
  }, []);
  React.useEffect(() => chart.current?.update(props.lines), [props.version, props.lines.length]);
  React.useEffect(() => chart.current?.setOptions(props.options), [props.options.log, props.options.smoothing]);
  return <div className="jp-JobsChartBox" data-series={props.name} ref={host} />;
}

export function ChartControls(props: {
  log: boolean;
  setLog: (on: boolean) => void;
  smoothing: number;
  setSmoothing: (w: number) => void;
}): JSX.Element {
  return (
    <div className="jp-JobsChartControls" role="toolbar" aria-label="chart options">
      <label>
        <input type="checkbox" checked={props.log} onChange={e => props.setLog(e.target.checked)} /> Log scale
      </label>
      <label>
        Smoothing{' '}
        <input
          type="range"
          min={0}
          max={0.99}
          step={0.01}
          value={props.smoothing}
          aria-label="smoothing"
          onChange={e => props.setSmoothing(Number(e.target.value))}
        />{' '}
        {props.smoothing.toFixed(2)}
      </label>
      <span className="jp-JobsMuted">Drag to zoom, double-click to reset.</span>
    </div>
  );
}

/** All of a job's series, one chart each; `only` limits them (e.g. the cell shows its own). */
export function MetricsView({ follower, only }: { follower: MetricsFollower; only?: 'custom' }): JSX.Element {
  useSignal(follower.appended);
  const [log, setLog] = React.useState(false);
  const [smoothing, setSmoothing] = React.useState(0);
  const version = React.useRef(0);
  version.current++;
  const all = [...follower.series.keys()].sort();
  const names = all.filter(n => !isProgress(n));
  const custom = names.filter(n => !isSystem(n));
  const system = only === 'custom' ? [] : names.filter(isSystem);
  if (only === 'custom' && !custom.length) {
    return <></>; // a cell: nothing until the job's own series come (its status shows progress)
  }
  if (!names.length) {
    return all.length ? (
      <p className="jp-JobsMuted">No metrics but its progress, shown as the bar above.</p>
    ) : (
      <p className="jp-JobsMuted">
        No metrics yet. A job reports them by appending JSON lines to $JOB_METRICS_FILE, e.g.{' '}
        <code>{'{"step": 10, "loss": 0.42}'}</code>, or with <code>jupyter_jobs.metrics.log(step=10, loss=0.42)</code>;
        CPU, memory and GPUs are sampled while it runs.
      </p>
    );
  }
  const charts = (list: string[], xLabel: string) => (
    <div className="jp-JobsCharts">
      {list.map(name => (
        <ChartBox
          key={name}
          name={name}
          version={version.current}
          lines={[lineOf(name, follower.series.get(name)!)]}
          options={{ title: name, log, smoothing, xLabel, format: formatFor(name) }}
        />
      ))}
    </div>
  );
  return (
    <div className="jp-JobsMetrics">
      <ChartControls log={log} setLog={setLog} smoothing={smoothing} setSmoothing={setSmoothing} />
      {custom.length ? charts(custom, 'step') : null}
      {system.length ? (
        <>
          <div className="jp-JobsSection">System</div>
          {charts(system, 'seconds')}
        </>
      ) : null}
    </div>
  );
}
