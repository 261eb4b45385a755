// schedules/: schedules: the sidebar's Schedules view (schedules.tsx), its state (model.ts),
// the form of a new schedule (scheduleform.tsx), cron in words (cron.ts), and the schedules'
// calls (api.ts).
//
// The schedules in the sidebar: one row per schedule (newest first) with its name, its cron
// expression and time zone (in words when it has a common shape), its next time or "paused",
// its last job and message; Pause/Resume and Delete. A row expands to its next five times and
// the jobs it started, each of which opens.
import * as React from 'react';

import { Schedule } from '../api';
import { confirmDelete, ErrorNote, useSignal, when } from '../common/common';
import { JobRow } from '../jobs/list';
import { JobsModel } from '../sidebar/model';
import { cronWords } from './cron';
import { SchedulesModel } from './model';

async function deleteSchedule(schedules: SchedulesModel, schedule: Schedule): Promise<void> {
  if (await confirmDelete('Delete schedule', `Delete “${schedule.name}”? It starts no more jobs; the jobs it started stay.`)) {
    await schedules.remove(schedule.id);
  }
}

/** A time as the clock in `zone` reads it (the browser's own where the browser lacks the zone). */
function inZone(iso: string, zone: string): string {
  try {
    return new Date(iso).toLocaleString(undefined, { timeZone: zone });
  } catch {
    return when(iso);
  }
}

/** Its next five times (in its time zone) and the jobs it started (newest first). */
function ScheduleDetail({ model, schedule }: { model: JobsModel; schedule: Schedule }): JSX.Element {
  const { jobs } = model.schedules;
  return (
    <div className="jp-JobsSchedule-detail" id={`jp-JobsSchedule-${schedule.id}`}>
      <div className="jp-JobsSection">Next times ({schedule.timezone})</div>
      {schedule.next_runs.length ? (
        <ol className="jp-JobsSchedule-times" aria-label="next times">
          {schedule.next_runs.map(at => (
            <li key={at}>
              <time dateTime={at}>{inZone(at, schedule.timezone)}</time>
            </li>
          ))}
        </ol>
      ) : (
        <p className="jp-JobsMuted">None while it is paused.</p>
      )}
      <div className="jp-JobsSection">Its jobs</div>
      {jobs.length ? (
        <ul className="jp-JobsRows" aria-label={`jobs of ${schedule.name}`}>
          {jobs.map(job => (
            <JobRow key={job.id} job={job} onOpen={model.openJob} />
          ))}
        </ul>
      ) : (
        <p className="jp-JobsMuted">None yet.</p>
      )}
    </div>
  );
}

function ScheduleRow({ model, schedule }: { model: JobsModel; schedule: Schedule }): JSX.Element {
  const { schedules } = model;
  const open = schedules.expanded === schedule.id;
  const words = cronWords(schedule.cron);
  return (
    <li className="jp-JobsSchedule" data-schedule-id={schedule.id} data-paused={schedule.paused}>
      <button
        className="jp-JobsSchedule-toggle"
        aria-expanded={open}
        aria-controls={`jp-JobsSchedule-${schedule.id}`}
        onClick={() => schedules.toggle(schedule.id)}
      >
        <span aria-hidden="true">{open ? '▾' : '▸'}</span> <span className="jp-JobsRow-name">{schedule.name}</span>
      </button>
      <span className="jp-JobsSchedule-cron">
        <code>{schedule.cron}</code> · {schedule.timezone}
        {words ? <span className="jp-JobsMuted"> · {words}</span> : null}
      </span>
      <span className="jp-JobsSchedule-next">
        {schedule.paused ? (
          <span className="jp-JobsBadge jp-mod-paused">paused</span>
        ) : (
          <>
            next <time dateTime={schedule.next_at ?? undefined}>{when(schedule.next_at)}</time>
          </>
        )}
      </span>
      {schedule.last_job ? (
        <span className="jp-JobsSchedule-last">
          last job{' '}
          <button className="jp-JobsLink" onClick={() => model.openJob(schedule.last_job!)}>
            {schedule.last_job}
          </button>{' '}
          <span className="jp-JobsMuted">{when(schedule.last_at)}</span>
        </span>
      ) : null}
      {schedule.message ? <span className="jp-JobsRow-waiting jp-JobsSchedule-message">{schedule.message}</span> : null}
      <span className="jp-JobsButtons">
        <button className="jp-mod-styled" onClick={() => void schedules.pause(schedule.id, !schedule.paused)}>
          {schedule.paused ? 'Resume' : 'Pause'}
        </button>
        <button className="jp-mod-styled jp-mod-warn" onClick={() => void deleteSchedule(schedules, schedule)}>
          Delete
        </button>
      </span>
      {open ? <ScheduleDetail model={model} schedule={schedule} /> : null}
    </li>
  );
}

/** The schedules view; it re-renders with the schedules' model. */
export function ScheduleList({ model }: { model: JobsModel }): JSX.Element {
  const { schedules } = model;
  useSignal(schedules.changed);
  return (
    <div className="jp-JobsList">
      <ErrorNote error={schedules.error} />
      {schedules.loaded && schedules.schedules.length === 0 && !schedules.error ? (
        <p className="jp-JobsEmpty">No schedules yet. On a job's tab, “Schedule this” runs it on a cron expression.</p>
      ) : null}
      <ul className="jp-JobsRows" aria-label="schedules">
        {schedules.schedules.map(schedule => (
          <ScheduleRow key={schedule.id} model={model} schedule={schedule} />
        ))}
      </ul>
    </div>
  );
}
