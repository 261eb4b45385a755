// The form of a new schedule: a job's spec (from its tab's "Schedule this" or the job form's
// "Schedule…") on a cron expression in a time zone, with a name, catch-up and overlap. The
// server's 400 names each bad field (cron, timezone, overlap, spec.<field>): each is shown
// beside its field, the spec's under what the job runs.
import * as React from 'react';

import { ApiError, Spec } from '../api';
import { ErrorNote } from '../common/common';
import { describe, Field } from '../common/fields';
import { asMagic, hasRedacted, whatItRuns } from '../jobs/copy';
import { JobsModel, ScheduleSpec, View } from '../sidebar/model';
import { schedulesApi } from './api';
import { cronWords } from './cron';

/** The browser's own time zone, the form's default. */
function browserZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
}

/** Every IANA zone the browser knows, for the time zone's suggestions (none where unknown). */
function zones(): string[] {
  const intl = Intl as unknown as { supportedValuesOf?: (key: string) => string[] };
  try {
    return intl.supportedValuesOf?.('timeZone') ?? [];
  } catch {
    return [];
  }
}

const SHOWN = ['cron', 'timezone', 'name', 'overlap', 'catch_up'];

/** What the schedule runs, and the spec's problems the server named (spec.<field>). */
function JobSummary({ spec, errors }: { spec: ScheduleSpec; errors: [string, string][] }): JSX.Element {
  const job = spec as unknown as Spec;
  return (
    <div className="jp-JobsField" data-field="spec">
      <span>Job</span>
      <code className="jp-JobsCommand" title={asMagic(job)}>
        {whatItRuns(job) || '(nothing to run)'}
      </code>
      <span className="jp-JobsMuted">
        {job.git ? `from ${job.git.url} @ ${job.git.ref || 'HEAD'}` : job.workspace ? `in ${job.workspace}` : 'in the server root'}
        {job.backend ? ` · ${job.backend}` : job.instance_type ? ` · ${job.instance_type}` : ''}
      </span>
      {hasRedacted(job) ? (
        <span className="jp-JobsField-error">
          Its secret environment values are not sent back by the server: they would run as ********. Use “Edit and
          resubmit”, type them in, then “Schedule…” in the form.
        </span>
      ) : null}
      {errors.map(([field, message]) => (
        <span key={field} className="jp-JobsField-error" data-field={field}>
          {field.replace(/^spec\./, '')}: {message}
        </span>
      ))}
    </div>
  );
}

export function ScheduleForm({ model, spec, back }: { model: JobsModel; spec: ScheduleSpec; back?: View }): JSX.Element {
  const [cron, setCron] = React.useState('');
  const [timezone, setTimezone] = React.useState(browserZone);
  const [name, setName] = React.useState(typeof spec.name === 'string' ? spec.name : '');
  const [catchUp, setCatchUp] = React.useState(false);
  const [overlap, setOverlap] = React.useState<'skip' | 'allow'>('skip');
  const [errors, setErrors] = React.useState<Record<string, string>>({});
  const [error, setError] = React.useState<string | null>(null);
  const [busy, setBusy] = React.useState(false);
  const known = React.useMemo(zones, []);
  const words = cronWords(cron);
  const shown = (field: string) => SHOWN.includes(field) || field.startsWith('spec.');
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setErrors({});
    setError(null);
    try {
      const created = await schedulesApi.createSchedule({ spec, cron, timezone, name: name || null, catch_up: catchUp, overlap });
      model.schedules.expand(created.id);
      model.open({ kind: 'schedules' });
    } catch (err) {
      const { message, byField } = describe(err as ApiError, shown, 'The schedule was not created');
      setErrors(byField);
      setError(message);
      setBusy(false);
    }
  };
  const specErrors = Object.entries(errors).filter(([field]) => field.startsWith('spec.') || field === 'spec');
  return (
    <form className="jp-JobsForm jp-JobsScheduleForm" onSubmit={e => void submit(e)} aria-label="new schedule">
      <div className="jp-JobsSection">New schedule</div>
      <JobSummary spec={spec} errors={specErrors} />
      <Field label="Name" field="name" error={errors.name}>
        <input name="name" value={name} onChange={e => setName(e.target.value)} placeholder="the job's name; e.g. nightly report" />
      </Field>
      <Field label="Cron" field="cron" error={errors.cron}>
        <input name="cron" value={cron} onChange={e => setCron(e.target.value)} placeholder="0 3 * * *" spellCheck={false} />
        <span className="jp-JobsMuted jp-JobsHint">
          {words ? `${words} · ` : ''}minute hour day month weekday; a sixth field for seconds (e.g. * * * * * */10)
        </span>
      </Field>
      <Field label="Time zone" field="timezone" error={errors.timezone}>
        <input name="timezone" value={timezone} onChange={e => setTimezone(e.target.value)} list="jp-JobsZones" spellCheck={false} />
        <datalist id="jp-JobsZones">
          {known.map(zone => (
            <option key={zone} value={zone} />
          ))}
        </datalist>
      </Field>
      <Field label="When the previous job still runs" field="overlap" error={errors.overlap}>
        <select name="overlap" value={overlap} onChange={e => setOverlap(e.target.value as 'skip' | 'allow')}>
          <option value="skip">skip that time</option>
          <option value="allow">start another job anyway</option>
        </select>
      </Field>
      <label className="jp-JobsCheck" data-field="catch_up">
        <input type="checkbox" name="catch_up" checked={catchUp} onChange={e => setCatchUp(e.target.checked)} /> After a server
        outage, run a missed time once
        {errors.catch_up ? <span className="jp-JobsField-error">{errors.catch_up}</span> : null}
      </label>
      <ErrorNote error={error} />
      <div className="jp-JobsButtons">
        <button type="submit" className="jp-mod-styled jp-mod-accept" disabled={busy}>
          Create schedule
        </button>
        <button type="button" className="jp-mod-styled" onClick={() => model.open(back ?? { kind: 'list' })}>
          Cancel
        </button>
      </div>
    </form>
  );
}
