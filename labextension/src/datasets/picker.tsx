// The job form's datasets: the datasets the job reads, each at a version or the newest (which
// the server resolves when the job is submitted and records, so a rerun reads the same bytes).
// Pick a dataset, then a version, then Add; × takes one away. The server's problems with an
// entry (`datasets.1.version`) are said beside the picker with the entry's name.
import * as React from 'react';

import { DatasetRef, DatasetSummary, DatasetVersion, errorMessage } from '../api';
import { datasetsApi } from './api';
import { contentWords } from './words';

/** The problems the server named for the datasets, with the name of the entry each is about. */
function problems(errors: Record<string, string>, chosen: DatasetRef[]): string[] {
  return Object.entries(errors)
    .filter(([field]) => field === 'datasets' || field.startsWith('datasets.'))
    .map(([field, message]) => {
      const entry = /^datasets\.(\d+)/.exec(field);
      const ref = entry ? chosen[Number(entry[1])] : undefined;
      return ref ? `${ref.name}: ${message}` : message;
    });
}

/** The versions of the dataset being picked, newest first (none until it is chosen). */
function useVersions(name: string): DatasetVersion[] {
  const [versions, setVersions] = React.useState<DatasetVersion[]>([]);
  React.useEffect(() => {
    let live = true;
    setVersions([]);
    if (name) {
      datasetsApi
        .versions(name)
        .then(found => live && setVersions(found))
        .catch(() => undefined); // "newest" is still offered
    }
    return () => {
      live = false;
    };
  }, [name]);
  return versions;
}

export function DatasetsField(props: {
  chosen: DatasetRef[];
  onChange: (chosen: DatasetRef[]) => void;
  errors: Record<string, string>;
}): JSX.Element {
  const { chosen, onChange, errors } = props;
  const [known, setKnown] = React.useState<DatasetSummary[] | null>(null);
  const [loadError, setLoadError] = React.useState<string | null>(null);
  const [name, setName] = React.useState('');
  const [version, setVersion] = React.useState('');
  const versions = useVersions(name);
  React.useEffect(() => {
    let live = true;
    datasetsApi
      .list()
      .then(found => live && setKnown(found))
      .catch(e => live && setLoadError(errorMessage(e)));
    return () => {
      live = false;
    };
  }, []);
  const offered = (known || []).filter(d => !chosen.some(c => c.name === d.name));
  const newest = (known || []).find(d => d.name === name)?.latest;
  const add = () => {
    if (name) {
      onChange([...chosen, { name, ...(version ? { version: Number(version) } : {}) }]);
      setName('');
      setVersion('');
    }
  };
  const said = problems(errors, chosen);
  return (
    <div className="jp-JobsField jp-JobsDatasetsField" data-field="datasets">
      <span>Datasets</span>
      {chosen.length ? (
        <ul className="jp-JobsDatasetsChosen" aria-label="datasets the job reads">
          {chosen.map(ref => (
            <li key={ref.name} data-dataset={ref.name}>
              <span>
                <code>{ref.name}</code> {ref.version ? `v${ref.version}` : 'newest'}
              </span>
              <button type="button" title={`Do not read ${ref.name}`} aria-label={`remove ${ref.name}`} onClick={() => onChange(chosen.filter(c => c.name !== ref.name))}>
                ×
              </button>
            </li>
          ))}
        </ul>
      ) : null}
      {known && !known.length ? (
        <span className="jp-JobsMuted jp-JobsHint">No datasets yet: the Datasets view makes them from a folder.</span>
      ) : (
        <div className="jp-JobsDatasetsPick">
          <select aria-label="dataset to read" name="dataset" value={name} onChange={e => (setName(e.target.value), setVersion(''))}>
            <option value="">{offered.length || !known ? 'choose a dataset…' : 'every dataset is chosen'}</option>
            {offered.map(d => (
              <option key={d.name} value={d.name}>
                {d.name}
              </option>
            ))}
          </select>
          <select aria-label="version to read" name="dataset-version" value={version} onChange={e => setVersion(e.target.value)} disabled={!name}>
            <option value="">{newest ? `newest (now v${newest.version})` : 'newest'}</option>
            {versions.map(v => (
              <option key={v.version} value={String(v.version)}>
                v{v.version} · {contentWords(v)}
              </option>
            ))}
          </select>
          <button type="button" className="jp-mod-styled" onClick={add} disabled={!name}>
            Add
          </button>
        </div>
      )}
      <span className="jp-JobsMuted jp-JobsHint">Read-only at $JOB_DATASETS_DIR/NAME (in a container, /datasets/NAME).</span>
      {said.map(message => (
        <span key={message} className="jp-JobsField-error">
          {message}
        </span>
      ))}
      {loadError ? <span className="jp-JobsField-error">The datasets could not be listed: {loadError}</span> : null}
    </div>
  );
}
