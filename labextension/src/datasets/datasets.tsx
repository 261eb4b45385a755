// datasets/: datasets and models (named, immutable versions of files that jobs read; a model
// also records its framework and what the job that made it saw), one machinery told its kind
// (kind.ts): the sidebar's Datasets and Models views (datasets.tsx), their state (model.ts), a
// version in words (words.tsx), the job form's picker (picker.tsx), a job tab's "datasets read",
// "models read", "Save artifacts as dataset…" and "Register as model…" (jobparts.tsx), and the
// calls (api.ts).
//
// The datasets (or the models) in the sidebar: one row per dataset with its newest version (its
// number, files and size, made when, by whom, from what; a model's framework) and how many
// versions it has; "New version…" (a folder under the root, the file browser's by default; a
// model's framework and description; each bad field's problem beside it).
// A row expands to its versions, newest first; a version expands to its lineage: the job that
// made it and the jobs that read it, each of which opens (a model's also its framework, its
// description, the job's final metrics and the datasets it read). A version downloads as a zip.
// Delete asks first; a refusal (a job not yet finished, a schedule or a named workflow holds it) is said beside the version.
import * as React from 'react';

import { ApiError, DatasetVersion, ModelVersion, Status } from '../api';
import { Badge, confirmDelete, ErrorNote, useSignal, when } from '../common/common';
import { describe, Field } from '../common/fields';
import { count } from '../common/words';
import { JobsModel } from '../sidebar/model';
import { Kind } from './kind';
import { DatasetsModel, versionKey } from './model';
import { contentWords, Source } from './words';

/** Made when, by whom, from what. */
function Made({ version, openJob }: { version: DatasetVersion; openJob: (id: string) => void }): JSX.Element {
  return (
    <span className="jp-JobsDataset-made">
      made <time dateTime={version.created_at}>{when(version.created_at)}</time> by {version.created_by} from{' '}
      <Source version={version} openJob={openJob} />
    </span>
  );
}

/** A name is checked here too: without one the request would have no address. */
function checkName(kind: Kind, name: string): Record<string, string> {
  return name.trim() ? {} : { name: `give the ${kind.noun} a name: a-z, 0-9, ".", "_" and "-"` };
}

/** "Dataset", "Model". */
function capitalNoun(kind: Kind): string {
  return kind.noun[0].toUpperCase() + kind.noun.slice(1);
}

/** The folder a new version of `name` starts from: the folder its newest version was made
 * from, else the file browser's. */
function startingFolder(datasets: DatasetsModel, name: string): string {
  const source = datasets.datasets.find(d => d.name === name)?.latest.source as { folder?: string } | undefined;
  return typeof source?.folder === 'string' ? source.folder : datasets.currentFolder();
}

/** The form of a new version from a folder under the server's root. */
function NewVersionForm({ datasets, name: given }: { datasets: DatasetsModel; name: string }): JSX.Element {
  const [name, setName] = React.useState(given);
  const { kind } = datasets;
  const [folder, setFolder] = React.useState(() => startingFolder(datasets, given));
  const [framework, setFramework] = React.useState('');
  const [description, setDescription] = React.useState('');
  const [errors, setErrors] = React.useState<Record<string, string>>({});
  const [error, setError] = React.useState<string | null>(null);
  const [busy, setBusy] = React.useState(false);
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    const unnamed = checkName(kind, name);
    setErrors(unnamed);
    setError(null);
    if (unnamed.name) {
      return;
    }
    setBusy(true);
    try {
      const meta = kind.described ? { framework: framework.trim() || undefined, description: description.trim() || undefined } : {};
      await datasets.create(name.trim(), { folder, ...meta });
    } catch (err) {
      const shown = (field: string) => ['name', 'folder', 'framework', 'description'].includes(field);
      const { message, byField } = describe(err as ApiError, shown, 'The version was not made');
      setErrors(byField);
      setError(message);
      setBusy(false);
    }
  };
  return (
    <form className="jp-JobsDatasetForm" noValidate onSubmit={e => void submit(e)} aria-label={`new ${kind.noun} version`}>
      <div className="jp-JobsSection">{given ? `New version of ${given}` : `New ${kind.noun} version`}</div>
      <Field label={capitalNoun(kind)} field="name" error={errors.name}>
        <input name="name" value={name} onChange={e => setName(e.target.value)} placeholder={kind.described ? 'e.g. classifier' : 'e.g. mnist'} spellCheck={false} />
      </Field>
      <Field label="Folder" field="folder" error={errors.folder}>
        <input name="folder" value={folder} onChange={e => setFolder(e.target.value)} placeholder="a folder under the server's root; e.g. data/mnist" spellCheck={false} />
        <span className="jp-JobsMuted jp-JobsHint">Its files as they are now become the new version; later changes do not change it.</span>
      </Field>
      {kind.described ? (
        <>
          <Field label="Framework (optional)" field="framework" error={errors.framework}>
            <input name="framework" value={framework} onChange={e => setFramework(e.target.value)} placeholder="pytorch, onnx, tensorflow, custom…" spellCheck={false} />
          </Field>
          <Field label="Description (optional)" field="description" error={errors.description}>
            <textarea name="description" value={description} onChange={e => setDescription(e.target.value)} rows={2} />
          </Field>
        </>
      ) : null}
      <ErrorNote error={error} />
      <div className="jp-JobsButtons">
        <button type="submit" className="jp-mod-styled jp-mod-accept" disabled={busy}>
          Make version
        </button>
        <button type="button" className="jp-mod-styled" onClick={() => datasets.openForm(null)}>
          Cancel
        </button>
      </div>
    </form>
  );
}

/** The version just made, and what was left out of it. */
function MadeNote({ datasets }: { datasets: DatasetsModel }): JSX.Element | null {
  const made = datasets.made;
  if (!made) {
    return null;
  }
  return (
    <div className="jp-JobsDataset-madeNote" role="status">
      Made {made.name} v{made.version}: {contentWords(made)}.
      {made.notes.length ? (
        <ul className="jp-JobsNotes">
          {made.notes.map((note, i) => (
            <li key={i}>{note}</li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}

/** A metric's last value, as a person reads it. */
function metricText(value: unknown): string {
  return typeof value === 'number' ? String(Number(value.toPrecision(6))) : JSON.stringify(value);
}

/** What a model version records beside its files: its framework and description, the final
 * metrics of the job that made it, and the dataset versions that job read. */
function ModelFacts({ version }: { version: ModelVersion }): JSX.Element {
  const metrics = Object.entries(version.metrics ?? {});
  const read = (version.datasets ?? []) as { name?: string; version?: number | null }[];
  return (
    <div className="jp-JobsModelFacts">
      <p className="jp-JobsModel-framework">
        framework <b>{version.framework || 'not given'}</b>
      </p>
      {version.description ? <p className="jp-JobsModel-description">{version.description}</p> : null}
      {version.job ? (
        <>
          <div className="jp-JobsSection">Final metrics</div>
          {metrics.length ? (
            <ul className="jp-JobsModel-metrics" aria-label={`final metrics of ${version.name} v${version.version}`}>
              {metrics.map(([metric, value]) => (
                <li key={metric} data-metric={metric}>
                  <code>{metric}</code> {metricText(value)}
                </li>
              ))}
            </ul>
          ) : (
            <p className="jp-JobsMuted">The job recorded none.</p>
          )}
          <div className="jp-JobsSection">Datasets its job read</div>
          {read.length ? (
            <ul className="jp-JobsModel-datasets" aria-label={`datasets read by the job that made ${version.name} v${version.version}`}>
              {read.map(ref => (
                <li key={ref.name} data-dataset={ref.name}>
                  <code>{ref.name}</code>
                  {ref.version ? ` v${ref.version}` : ''}
                </li>
              ))}
            </ul>
          ) : (
            <p className="jp-JobsMuted">None.</p>
          )}
        </>
      ) : null}
    </div>
  );
}

/** The job that made a version and the jobs that read it (newest first), each opening its tab;
 * a model's version also what it records (ModelFacts). */
function Lineage({ model, datasets, name, version }: { model: JobsModel; datasets: DatasetsModel; name: string; version: number }): JSX.Element {
  const { detail } = datasets;
  const id = `jp-JobsDatasetVersion-${versionKey(name, version)}`;
  if (!detail || detail.name !== name || detail.version !== version) {
    return (
      <div className="jp-JobsDataset-lineage" id={id}>
        <p className="jp-JobsMuted">Loading…</p>
      </div>
    );
  }
  return (
    <div className="jp-JobsDataset-lineage" id={id}>
      {datasets.kind.described ? <ModelFacts version={detail as unknown as ModelVersion} /> : null}
      <div className="jp-JobsSection">Made by</div>
      <p className="jp-JobsDataset-maker">
        {detail.job ? (
          <>
            job{' '}
            <button className="jp-JobsLink jp-JobsDataset-job" onClick={() => model.openJob(detail.job!)}>
              {detail.job}
            </button>{' '}
            ({detail.created_by})
          </>
        ) : (
          <>
            {detail.created_by}, from <Source version={detail} openJob={model.openJob} />
          </>
        )}
      </p>
      <div className="jp-JobsSection">Read by</div>
      {detail.read_by.length ? (
        <ul className="jp-JobsDataset-readers" aria-label={`jobs that read ${name} v${version}`}>
          {detail.read_by.map(reader => (
            <li key={reader.id} data-job-id={reader.id} data-status={reader.status}>
              <button className="jp-JobsLink jp-JobsDataset-job" onClick={() => model.openJob(reader.id)} title={`Open job ${reader.id}`}>
                {reader.id}
              </button>{' '}
              <Badge status={reader.status as Status} />{' '}
              <time className="jp-JobsMuted" dateTime={reader.created_at}>
                {when(reader.created_at)}
              </time>
            </li>
          ))}
        </ul>
      ) : (
        <p className="jp-JobsMuted">No job yet.</p>
      )}
    </div>
  );
}

async function deleteVersion(datasets: DatasetsModel, name: string, version: number): Promise<void> {
  const body = `Delete version ${version} of “${name}”? Its files can no longer be read; the jobs that read it keep their records. This cannot be undone.`;
  if (await confirmDelete(`Delete ${datasets.kind.noun} version`, body)) {
    await datasets.remove(name, version);
  }
}

function VersionRow({ model, datasets, version }: { model: JobsModel; datasets: DatasetsModel; version: DatasetVersion }): JSX.Element {
  const { name } = version;
  const open = datasets.version === version.version;
  const error = datasets.versionError(name, version.version);
  return (
    <li className="jp-JobsDatasetVersion" data-version={version.version}>
      <button
        className="jp-JobsSchedule-toggle"
        aria-expanded={open}
        aria-controls={`jp-JobsDatasetVersion-${versionKey(name, version.version)}`}
        onClick={() => datasets.toggleVersion(name, version.version)}
      >
        <span aria-hidden="true">{open ? '▾' : '▸'}</span> <span className="jp-JobsDataset-number">v{version.version}</span>{' '}
        <span className="jp-JobsDataset-content">{contentWords(version)}</span>
      </button>
      <Made version={version} openJob={model.openJob} />
      <span className="jp-JobsButtons">
        <a
          className="jp-mod-styled jp-JobsButtonLink jp-JobsDataset-download"
          href={datasets.download(name, version.version)}
          download={`${name}-v${version.version}.zip`}
          title={`The files of ${name} v${version.version} as one zip`}
          aria-label={`Download ${name} v${version.version}`}
        >
          Download
        </a>
        <button className="jp-mod-styled jp-mod-warn" onClick={() => void deleteVersion(datasets, name, version.version)} aria-label={`Delete ${name} v${version.version}`}>
          Delete
        </button>
      </span>
      {error ? (
        <div className="jp-JobsError jp-JobsDataset-error" role="alert">
          {error}
        </div>
      ) : null}
      {open ? <Lineage model={model} datasets={datasets} name={name} version={version.version} /> : null}
    </li>
  );
}

function DatasetRow({ model, datasets, name }: { model: JobsModel; datasets: DatasetsModel; name: string }): JSX.Element {
  const dataset = datasets.datasets.find(d => d.name === name)!;
  const open = datasets.expanded === name;
  const { latest } = dataset;
  return (
    <li className="jp-JobsDataset" data-dataset={name}>
      <button className="jp-JobsSchedule-toggle" aria-expanded={open} aria-controls={`jp-JobsDataset-${name}`} onClick={() => datasets.toggle(name)}>
        <span aria-hidden="true">{open ? '▾' : '▸'}</span> <span className="jp-JobsRow-name">{name}</span>
        <span className="jp-JobsMuted jp-JobsDataset-count">{count(dataset.versions, 'version')}</span>
      </button>
      <span className="jp-JobsDataset-latest">
        <span className="jp-JobsDataset-number">v{latest.version}</span> · <span className="jp-JobsDataset-content">{contentWords(latest)}</span>
      </span>
      {datasets.kind.described && (latest as ModelVersion).framework ? (
        <span className="jp-JobsModel-framework jp-JobsMuted">{(latest as ModelVersion).framework}</span>
      ) : null}
      <Made version={latest} openJob={model.openJob} />
      <span className="jp-JobsButtons">
        <button className="jp-mod-styled" onClick={() => datasets.openForm({ name })}>
          New version…
        </button>
      </span>
      {open ? (
        <div className="jp-JobsDataset-detail" id={`jp-JobsDataset-${name}`}>
          {datasets.form?.name === name ? <NewVersionForm key={name} datasets={datasets} name={name} /> : null}
          <ul className="jp-JobsRows" aria-label={`versions of ${name}`}>
            {datasets.versions.map(v => (
              <VersionRow key={v.version} model={model} datasets={datasets} version={v} />
            ))}
          </ul>
        </div>
      ) : datasets.form?.name === name ? (
        <NewVersionForm key={name} datasets={datasets} name={name} />
      ) : null}
    </li>
  );
}

/** What an empty view says, by kind. */
const EMPTY: Record<Kind['path'], string> = {
  datasets: "No datasets yet. “New version…” makes one from a folder; a finished job's tab saves its artifacts as one.",
  models: "No models yet. A finished job's tab registers its artifacts (or a file of them) as one; “New version…” makes one from a folder."
};

/** The Datasets view (or the Models view: `datasets` of that kind); it re-renders with it. */
export function DatasetList({ model, datasets }: { model: JobsModel; datasets: DatasetsModel }): JSX.Element {
  useSignal(datasets.changed);
  const form = datasets.form;
  const { kind } = datasets;
  return (
    <div className={`jp-JobsList jp-JobsDatasets jp-mod-${kind.path}`} data-kind={kind.path}>
      <div className="jp-JobsButtons">
        <button className="jp-mod-styled" onClick={() => datasets.openForm({ name: '' })} disabled={form?.name === ''}>
          New version…
        </button>
      </div>
      {form?.name === '' ? <NewVersionForm key="" datasets={datasets} name="" /> : null}
      <MadeNote datasets={datasets} />
      <ErrorNote error={datasets.error} />
      {datasets.loaded && datasets.datasets.length === 0 && !datasets.error ? (
        <p className="jp-JobsEmpty">{EMPTY[kind.path]}</p>
      ) : null}
      <ul className="jp-JobsRows" aria-label={kind.path}>
        {datasets.datasets.map(d => (
          <DatasetRow key={d.name} model={model} datasets={datasets} name={d.name} />
        ))}
      </ul>
    </div>
  );
}
