// A job's tab and datasets (and models, the same told another kind): the datasets and the
// models it reads, in its details ("mnist v2 at /datasets/mnist", each opening the Datasets or
// Models view at that version), and, for a finished job, "Save artifacts as dataset…" and
// "Register as model…": a name and, optionally, a file or folder of its artifacts (a model also
// its framework and description) become a new version, shown once made, or the server's
// problems beside the fields they are about.
import * as React from 'react';

import { ApiError, Backend, DatasetMade, DatasetRef, Job } from '../api';
import { ErrorNote } from '../common/common';
import { describe, Field } from '../common/fields';
import { jobsApi } from '../jobs/api';
import { jobVersions, versionsApi } from './api';
import { DATASETS, Kind, MODELS } from './kind';
import { contentWords, mountPath } from './words';

/** The backends, asked once a page: whether a job's backend runs containers says where it
 * reads its datasets. */
let backends: Promise<Backend[]> | null = null;

function useContainers(backend: string): boolean | undefined {
  const [containers, setContainers] = React.useState<boolean | undefined>(undefined);
  React.useEffect(() => {
    let live = true;
    backends ??= jobsApi
      .backends()
      .then(reply => reply.backends)
      .catch(() => {
        backends = null; // asked again next time
        return [];
      });
    void backends.then(found => live && setContainers(found.find(b => b.name === backend)?.capabilities.containers));
    return () => {
      live = false;
    };
  }, [backend]);
  return containers;
}

/** Shows a version (the newest, without one) in the Datasets or Models view. */
export type OpenVersion = (kind: Kind, name: string, version?: number | null) => void;

/** The datasets (or models) a job reads: "mnist v2 at /datasets/mnist" each, the version
 * opening its view. */
export function VersionsRead(props: { kind: Kind; job: Job; openVersion: OpenVersion }): JSX.Element {
  const { kind, job, openVersion } = props;
  const containers = useContainers(job.backend);
  const refs: DatasetRef[] = job.spec[kind.path] || [];
  return (
    <ul className="jp-JobsDatasetsRead" data-kind={kind.path} aria-label={`${kind.path} read`}>
      {refs.map(ref => (
        <li key={ref.name} data-dataset={ref.name}>
          <button className="jp-JobsLink" onClick={() => openVersion(kind, ref.name, ref.version)} title={`Show ${ref.name} in the ${kind.title} view`}>
            {ref.name}
            {ref.version ? ` v${ref.version}` : ''}
          </button>{' '}
          at <code>{mountPath(ref, containers, kind)}</code>
        </li>
      ))}
    </ul>
  );
}

/** The outputs a job declares ("features → dataset mnist-features"), each with the version it
 * became once the job succeeded, which opens its view; asked again when the job's status moves. */
export function Outputs(props: { job: Job; openVersion: OpenVersion }): JSX.Element {
  const { job, openVersion } = props;
  const [made, setMade] = React.useState<{ kind: Kind; name: string; version: number; path: string }[]>([]);
  React.useEffect(() => {
    let live = true;
    if (job.status === 'succeeded' || job.status === 'failed') {
      void jobVersions(job.id)
        .then(reply => {
          const all = [...reply.datasets.map(v => ({ kind: DATASETS, v })), ...reply.models.map(v => ({ kind: MODELS, v }))];
          live && setMade(all.map(({ kind, v }) => ({ kind, name: v.name, version: v.version, path: String((v.source as { path?: string }).path ?? '') })));
        })
        .catch(() => undefined); // the declared outputs still show
    }
    return () => {
      live = false;
    };
  }, [job.id, job.status]);
  const outputs = Object.entries(job.spec.outputs ?? {});
  return (
    <ul className="jp-JobsOutputs" aria-label="outputs">
      {outputs.map(([key, output]) => {
        const kept = made.find(m => m.path === `outputs/${key}`);
        return (
          <li key={key} data-output={key}>
            <code>{key}</code> → {output.type === 'volume' ? <>a volume, <code>/inputs/{key}</code> for the jobs after it</> : `${output.type} ${output.name}`}
            {kept ? (
              <>
                {' · '}
                <button className="jp-JobsLink jp-JobsOutputs-kept" onClick={() => openVersion(kept.kind, kept.name, kept.version)} title={`Show ${kept.name} v${kept.version} in the ${kept.kind.title} view`}>
                  kept as {kept.name} v{kept.version}
                </button>
              </>
            ) : null}
          </li>
        );
      })}
    </ul>
  );
}

/** What the form of a kind says: its title, its button, what a made version is, and the error. */
function saveWords(kind: Kind): { label: string; submit: string; made: string; failed: string } {
  return kind.described
    ? { label: `register as ${kind.noun}`, submit: `Register ${kind.noun}`, made: 'Registered as', failed: `The ${kind.noun} was not registered` }
    : { label: `save artifacts as ${kind.noun}`, submit: `Save as ${kind.noun}`, made: 'Saved as', failed: `The ${kind.noun} was not saved` };
}

/** The fields a version of a kind is made from, beside the name and the path. */
const FIELDS = ['name', 'path', 'framework', 'description'];

/** A finished job's artifacts (all, or one file or folder of them) saved as a new version of a
 * dataset, or registered as a model (with its framework and description); then the version
 * made, which opens in its view. */
export function SaveAsVersion(props: { kind: Kind; job: Job; close: () => void; openVersion: OpenVersion }): JSX.Element {
  const { kind, job, close, openVersion } = props;
  const words = saveWords(kind);
  const [values, setValues] = React.useState<Record<string, string>>({ name: '', path: '', framework: '', description: '' });
  const [errors, setErrors] = React.useState<Record<string, string>>({});
  const [error, setError] = React.useState<string | null>(null);
  const [busy, setBusy] = React.useState(false);
  const [made, setMade] = React.useState<DatasetMade | null>(null);
  const bind = (field: string) => ({
    name: field,
    value: values[field],
    spellCheck: false,
    onChange: (e: React.ChangeEvent<HTMLInputElement | HTMLTextAreaElement>) => setValues({ ...values, [field]: e.target.value })
  });
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    setErrors({});
    setError(null);
    const name = values.name.trim();
    if (!name) {
      setErrors({ name: `give the ${kind.noun} a name: a-z, 0-9, ".", "_" and "-"` });
      return;
    }
    const meta = kind.described
      ? { path: values.path.trim(), framework: values.framework.trim() || undefined, description: values.description.trim() || undefined }
      : values.path.trim()
        ? { path: values.path.trim() }
        : {};
    setBusy(true);
    try {
      setMade(await versionsApi(kind).create(name, { job: job.id, ...meta }));
    } catch (err) {
      const { message, byField } = describe(err as ApiError, f => FIELDS.includes(f), words.failed);
      setErrors(byField);
      setError(message);
    }
    setBusy(false);
  };
  if (made) {
    return (
      <div className="jp-JobsSaveDataset jp-JobsSaveDataset-made" data-kind={kind.path} data-dataset={made.name} data-version={made.version} role="status">
        <span>
          {words.made} <b>{made.name}</b> v{made.version}: {contentWords(made)}.
        </span>
        {made.notes.length ? <span className="jp-JobsMuted"> {made.notes.join('; ')}</span> : null}
        <span className="jp-JobsButtons">
          <button className="jp-mod-styled" onClick={() => openVersion(kind, made.name, made.version)}>
            Show in {kind.title}
          </button>
          <button className="jp-mod-styled" onClick={close}>
            Close
          </button>
        </span>
      </div>
    );
  }
  return (
    <form className="jp-JobsSaveDataset" data-kind={kind.path} noValidate onSubmit={e => void submit(e)} aria-label={words.label}>
      <Field label={kind.described ? 'Model' : 'Dataset'} field="name" error={errors.name}>
        <input {...bind('name')} placeholder={`a new or existing ${kind.noun}; e.g. ${kind.described ? 'classifier' : 'features'}`} />
      </Field>
      <Field label="Path (optional)" field="path" error={errors.path}>
        <input {...bind('path')} placeholder="all its artifacts; or a file or folder of them, e.g. out" />
      </Field>
      {kind.described ? (
        <>
          <Field label="Framework (optional)" field="framework" error={errors.framework}>
            <input {...bind('framework')} placeholder="pytorch, onnx, tensorflow, custom…" />
          </Field>
          <Field label="Description (optional)" field="description" error={errors.description}>
            <textarea {...bind('description')} rows={2} placeholder="what it is, what it was trained on" />
          </Field>
        </>
      ) : null}
      <span className="jp-JobsButtons">
        <button type="submit" className="jp-mod-styled jp-mod-accept" disabled={busy}>
          {words.submit}
        </button>
        <button type="button" className="jp-mod-styled" onClick={close}>
          Cancel
        </button>
      </span>
      <ErrorNote error={error} />
    </form>
  );
}
