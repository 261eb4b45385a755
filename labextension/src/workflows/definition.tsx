// A named workflow's page (a main-area tab): its name and newest spec version, "Run with
// inputs" (a form made from the `inputs:` the newest version declares: a field per input, its
// default filled in, its description beside it, each problem the server names beside its
// field; a run started opens in its own tab), its runs (newest first: their status, the spec
// version and the inputs each ran with; each opens), and its spec versions (newest first, each
// spec shown on demand). Refreshed while the tab is on screen.
import { load } from 'js-yaml';
import * as React from 'react';

import { ApiError, DatasetSummary, errorMessage, Status, WorkflowDefinition } from '../api';
import { Badge, ErrorNote, when } from '../common/common';
import { describe, Field } from '../common/fields';
import { count } from '../common/words';
import { datasetsApi } from '../datasets/api';
import { RunSummary } from '../sidebar/model';
import { definitionsApi } from './api';
import { countsText, inputsText } from './runs';

/** An input a spec declares at its top: `NAME: {type: string | dataset, default, description}`. */
export interface DeclaredInput {
  name: string;
  type: string;
  default?: unknown;
  description?: string;
}

/** The inputs a spec (YAML text, or the object it reads as) declares, in its order; an error
 * when its text is not YAML the panel can read (the server checked it when it was saved). */
export function declaredInputs(spec: unknown): DeclaredInput[] {
  const data = typeof spec === 'string' ? load(spec) : spec;
  const inputs = data && typeof data === 'object' ? (data as { inputs?: unknown }).inputs : undefined;
  if (!inputs || typeof inputs !== 'object') {
    return [];
  }
  return Object.entries(inputs as Record<string, unknown>).map(([name, info]) => {
    const given = (info && typeof info === 'object' ? info : {}) as Record<string, unknown>;
    return {
      name,
      type: typeof given.type === 'string' ? given.type : 'string',
      default: given.default ?? undefined,
      description: typeof given.description === 'string' ? given.description : undefined
    };
  });
}

/** A spec as text: the YAML it was saved as, or its object as JSON. */
function specText(spec: unknown): string {
  return typeof spec === 'string' ? spec : JSON.stringify(spec, null, 2);
}

/** A value as a form's field holds it. */
function fieldText(value: unknown): string {
  return value === undefined || value === null ? '' : typeof value === 'string' ? value : JSON.stringify(value);
}

/** The datasets a dataset input offers (a hint: any NAME or NAME:VERSION is sent). */
function useDatasets(wanted: boolean): DatasetSummary[] {
  const [found, setFound] = React.useState<DatasetSummary[]>([]);
  React.useEffect(() => {
    let live = true;
    if (wanted) {
      datasetsApi
        .list()
        .then(list => live && setFound(list))
        .catch(() => undefined); // the field still takes a name
    }
    return () => {
      live = false;
    };
  }, [wanted]);
  return found;
}

/** "Run with inputs": the newest version's inputs, each a field; Run starts a run of it. */
function RunForm(props: { name: string; newest: WorkflowDefinition; started: (run: RunSummary) => void }): JSX.Element {
  const { name, newest, started } = props;
  const [declared, readError] = React.useMemo((): [DeclaredInput[], string | null] => {
    try {
      return [declaredInputs(newest.spec), null];
    } catch (error) {
      return [[], `Its inputs could not be read from the spec: ${errorMessage(error)}`];
    }
  }, [newest]);
  const [values, setValues] = React.useState<Record<string, string>>(() =>
    Object.fromEntries(declared.map(input => [input.name, fieldText(input.default)]))
  );
  const [errors, setErrors] = React.useState<Record<string, string>>({});
  const [error, setError] = React.useState<string | null>(null);
  const [busy, setBusy] = React.useState(false);
  const datasets = useDatasets(declared.some(input => input.type === 'dataset'));
  const listId = `jp-JobsDefinition-datasets-${name}`;
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    setErrors({});
    setError(null);
    setBusy(true);
    // an empty field is left out: the server fills its default, or names it as required
    const inputs = Object.fromEntries(Object.entries(values).filter(([, value]) => value.trim() !== ''));
    try {
      started(await definitionsApi.run(name, inputs));
    } catch (err) {
      const shown = (field: string) => declared.some(input => field === `inputs.${input.name}`);
      const { message, byField } = describe(err as ApiError, shown, 'The run was not started');
      setErrors(byField);
      setError(message);
    }
    setBusy(false);
  };
  return (
    <form className="jp-JobsDefinition-run" noValidate onSubmit={e => void submit(e)} aria-label={`run ${name} with inputs`}>
      <div className="jp-JobsSection">Run with inputs</div>
      <p className="jp-JobsMuted jp-JobsHint">
        Runs version {newest.version}, the newest, in <code>{newest.workspace || '(root)'}</code>.
      </p>
      {readError ? <ErrorNote error={readError} /> : null}
      {declared.length === 0 && !readError ? <p className="jp-JobsMuted">It declares no inputs.</p> : null}
      {declared.map(input => (
        <Field key={input.name} label={input.name} field={`inputs.${input.name}`} error={errors[`inputs.${input.name}`]}>
          <input
            name={input.name}
            data-type={input.type}
            value={values[input.name] ?? ''}
            onChange={e => setValues({ ...values, [input.name]: e.target.value })}
            placeholder={input.type === 'dataset' ? 'NAME or NAME:VERSION' : input.default === undefined ? 'required' : ''}
            list={input.type === 'dataset' ? listId : undefined}
            spellCheck={false}
          />
          <span className="jp-JobsMuted jp-JobsHint">
            {input.type}
            {input.default === undefined ? ', required' : `, default ${fieldText(input.default)}`}
            {input.description ? ` · ${input.description}` : ''}
          </span>
        </Field>
      ))}
      {datasets.length ? (
        <datalist id={listId}>
          {datasets.map(d => (
            <option key={d.name} value={d.name} />
          ))}
        </datalist>
      ) : null}
      <ErrorNote error={error} />
      <div className="jp-JobsButtons">
        <button type="submit" className="jp-mod-styled jp-mod-accept" disabled={busy}>
          Run
        </button>
      </div>
    </form>
  );
}

function DefinitionRunRow({ run, openRun }: { run: RunSummary; openRun: (id: string) => void }): JSX.Element {
  return (
    <li className="jp-JobsDefinition-runRow" data-run-id={run.id} data-status={run.status}>
      <Badge status={run.status as Status} />
      <button className="jp-JobsLink" onClick={() => openRun(run.id)} title={`Open run ${run.id}`}>
        {run.id}
      </button>
      <span className="jp-JobsMuted">v{run.definition_version ?? '?'}</span>
      <span className="jp-JobsDefinition-inputs">{inputsText(run.inputs) || 'no inputs'}</span>
      <span className="jp-JobsMuted">
        {countsText(run.counts)} · {when(run.created_at)}
      </span>
    </li>
  );
}

function VersionRow({ version, newest }: { version: WorkflowDefinition; newest: boolean }): JSX.Element {
  return (
    <li className="jp-JobsDefinition-version" data-version={version.version}>
      <details>
        <summary>
          <b>v{version.version}</b>
          {newest ? ' (newest)' : ''} · <time dateTime={version.created_at}>{when(version.created_at)}</time> by {version.created_by}
          {version.workspace ? (
            <>
              {' '}
              · in <code>{version.workspace}</code>
            </>
          ) : null}
        </summary>
        <pre className="jp-JobsSpec" tabIndex={0} aria-label={`spec of version ${version.version}`}>
          {specText(version.spec)}
        </pre>
      </details>
    </li>
  );
}

/** The named workflow's versions and runs, fetched now and every few seconds while `shown`. */
function useDefinition(name: string, shown: () => boolean) {
  const [versions, setVersions] = React.useState<WorkflowDefinition[] | null>(null);
  const [runs, setRuns] = React.useState<RunSummary[]>([]);
  const [error, setError] = React.useState<string | null>(null);
  const [tick, setTick] = React.useState(0);
  React.useEffect(() => {
    let live = true;
    let timer = 0;
    const load = async () => {
      if (shown()) {
        try {
          const [history, page] = await Promise.all([definitionsApi.history(name), definitionsApi.runs(name)]);
          if (!live) {
            return;
          }
          setVersions(history.versions);
          setRuns(page.workflows);
          setError(null);
        } catch (e) {
          if (live) {
            setError(errorMessage(e));
          }
        }
      }
      if (live) {
        timer = window.setTimeout(() => void load(), 3000);
      }
    };
    void load();
    return () => {
      live = false;
      window.clearTimeout(timer);
    };
  }, [name, tick]);
  return { versions, runs, error, reload: () => setTick(t => t + 1) };
}

export function DefinitionView(props: { name: string; openRun: (id: string) => void; shown: () => boolean }): JSX.Element {
  const { name, openRun, shown } = props;
  const { versions, runs, error, reload } = useDefinition(name, shown);
  const [note, setNote] = React.useState<string | null>(null);
  if (!versions) {
    return <div className="jp-JobsDefinition">{error ? <ErrorNote error={error} /> : <p className="jp-JobsMuted">Loading…</p>}</div>;
  }
  const newest = versions[0];
  const started = (run: RunSummary) => {
    setNote(`Started run ${run.id} of version ${run.definition_version} with ${inputsText(run.inputs) || 'no inputs'}.`);
    reload();
    openRun(run.id);
  };
  return (
    <div className="jp-JobsDefinition" data-definition={name}>
      <h2 className="jp-JobsTitle">
        {name}
        <span className="jp-JobsMuted jp-JobsTitle-meta">
          named workflow · {count(versions.length, 'version')} · newest v{newest.version}, {when(newest.created_at)}
        </span>
      </h2>
      <ErrorNote error={error} />
      <RunForm key={newest.version} name={name} newest={newest} started={started} />
      {note ? (
        <p className="jp-JobsDefinition-note" role="status">
          {note}
        </p>
      ) : null}
      <div className="jp-JobsSection">Runs</div>
      {runs.length ? (
        <ul className="jp-JobsDefinition-runs" aria-label={`runs of ${name}`}>
          {runs.map(run => (
            <DefinitionRunRow key={run.id} run={run} openRun={openRun} />
          ))}
        </ul>
      ) : (
        <p className="jp-JobsMuted">No runs yet.</p>
      )}
      <div className="jp-JobsSection">Spec versions</div>
      <ul className="jp-JobsDefinition-versions" aria-label={`spec versions of ${name}`}>
        {versions.map(v => (
          <VersionRow key={v.version} version={v} newest={v.version === newest.version} />
        ))}
      </ul>
    </div>
  );
}
