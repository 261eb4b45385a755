// The job form's datasets (and models, the same told another kind): what the job reads, each at
// a version or the newest (which the server resolves when the job is submitted and records, so a
// rerun reads the same bytes). Pick one, then a version, then Add; × takes one away. The
// server's problems with an entry (`datasets.1.version`) are said beside the picker with the
// entry's name.
import * as React from 'react';

import { DatasetRef, DatasetSummary, DatasetVersion, errorMessage } from '../api';
import { versionsApi } from './api';
import { Kind } from './kind';
import { contentWords } from './words';

/** The problems the server named for the datasets, with the name of the entry each is about. */
function problems(kind: Kind, errors: Record<string, string>, chosen: DatasetRef[]): string[] {
  return Object.entries(errors)
    .filter(([field]) => field === kind.path || field.startsWith(`${kind.path}.`))
    .map(([field, message]) => {
      const entry = new RegExp(`^${kind.path}\\.(\\d+)`).exec(field);
      const ref = entry ? chosen[Number(entry[1])] : undefined;
      return ref ? `${ref.name}: ${message}` : message;
    });
}

/** The versions of the one being picked, newest first (none until it is chosen). */
function useVersions(kind: Kind, name: string): DatasetVersion[] {
  const [versions, setVersions] = React.useState<DatasetVersion[]>([]);
  React.useEffect(() => {
    let live = true;
    setVersions([]);
    if (name) {
      versionsApi(kind)
        .versions(name)
        .then(found => live && setVersions(found))
        .catch(() => undefined); // "newest" is still offered
    }
    return () => {
      live = false;
    };
  }, [kind, name]);
  return versions;
}

export function VersionsField(props: {
  kind: Kind;
  chosen: DatasetRef[];
  onChange: (chosen: DatasetRef[]) => void;
  errors: Record<string, string>;
}): JSX.Element {
  const { kind, chosen, onChange, errors } = props;
  const noun = kind.noun;
  const [known, setKnown] = React.useState<DatasetSummary[] | null>(null);
  const [loadError, setLoadError] = React.useState<string | null>(null);
  const [name, setName] = React.useState('');
  const [version, setVersion] = React.useState('');
  const versions = useVersions(kind, name);
  React.useEffect(() => {
    let live = true;
    versionsApi(kind)
      .list()
      .then(found => live && setKnown(found))
      .catch(e => live && setLoadError(errorMessage(e)));
    return () => {
      live = false;
    };
  }, [kind]);
  const offered = (known || []).filter(d => !chosen.some(c => c.name === d.name));
  const newest = (known || []).find(d => d.name === name)?.latest;
  const add = () => {
    if (name) {
      onChange([...chosen, { name, ...(version ? { version: Number(version) } : {}) }]);
      setName('');
      setVersion('');
    }
  };
  const said = problems(kind, errors, chosen);
  return (
    <div className="jp-JobsField jp-JobsDatasetsField" data-field={kind.path} data-kind={kind.path}>
      <span>{kind.title}</span>
      {chosen.length ? (
        <ul className="jp-JobsDatasetsChosen" aria-label={`${kind.path} the job reads`}>
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
        <span className="jp-JobsMuted jp-JobsHint">
          No {kind.path} yet: the {kind.title} view makes them{kind.described ? '' : ' from a folder'}.
        </span>
      ) : (
        <div className="jp-JobsDatasetsPick">
          <select aria-label={`${noun} to read`} name={noun} value={name} onChange={e => (setName(e.target.value), setVersion(''))}>
            <option value="">{offered.length || !known ? `choose a ${noun}…` : `every ${noun} is chosen`}</option>
            {offered.map(d => (
              <option key={d.name} value={d.name}>
                {d.name}
              </option>
            ))}
          </select>
          <select aria-label={`${noun} version to read`} name={`${noun}-version`} value={version} onChange={e => setVersion(e.target.value)} disabled={!name}>
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
      <span className="jp-JobsMuted jp-JobsHint">
        Read-only at {kind.dirVar}/NAME (in a container, /{kind.path}/NAME).
      </span>
      {said.map(message => (
        <span key={message} className="jp-JobsField-error">
          {message}
        </span>
      ))}
      {loadError ? <span className="jp-JobsField-error">The {kind.path} could not be listed: {loadError}</span> : null}
    </div>
  );
}
