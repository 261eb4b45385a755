// artifacts/: a job's artifacts: the list and preview (artifacts.tsx), a notebook artifact
// opened in JupyterLab (notebook.ts), and the artifacts' calls (api.ts).
//
// A job's artifacts: the list (size, download) and a preview of the one chosen: images,
// text, CSV as a table (papaparse), JSON pretty-printed; notebooks open in JupyterLab.
import Papa from 'papaparse';
import * as React from 'react';

import { Artifact, errorMessage } from '../api';
import { ErrorNote } from '../common/common';
import { artifactUrl, artifactsApi } from './api';

/** A preview reads at most this much of a file. */
const HEAD = 256 * 1024;
const IMAGE = /\.(png|jpe?g|gif|svg|webp|bmp)$/i;
const TEXT = /\.(txt|log|md|py|r|jl|sh|yaml|yml|toml|ini|cfg|out|err|html|xml|tsv|csv|json|jsonl|ndjson)$/i;

export function size(bytes: number): string {
  const units = ['bytes', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit ? `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}` : `${bytes.toLocaleString()} bytes`;
}

type Preview = { kind: 'text'; text: string; cut: boolean } | { kind: 'table'; rows: string[][]; cut: boolean };

async function preview(id: string, artifact: Artifact): Promise<Preview> {
  const text = await (await artifactsApi.artifactHead(id, artifact.path, HEAD)).text();
  const cut = artifact.size > HEAD;
  if (/\.(csv|tsv)$/i.test(artifact.path)) {
    const parsed = Papa.parse<string[]>(text, { skipEmptyLines: true, preview: 500 });
    return { kind: 'table', rows: parsed.data, cut: cut || parsed.data.length >= 500 };
  }
  if (/\.json$/i.test(artifact.path) && !cut) {
    try {
      return { kind: 'text', text: JSON.stringify(JSON.parse(text), null, 2), cut };
    } catch {
      // not valid JSON: shown as it is
    }
  }
  return { kind: 'text', text, cut };
}

function Table({ rows }: { rows: string[][] }): JSX.Element {
  const [head, ...body] = rows;
  return (
    <table className="jp-JobsCsv">
      <thead>
        <tr>{(head || []).map((cell, i) => <th key={i}>{cell}</th>)}</tr>
      </thead>
      <tbody>
        {body.map((row, r) => (
          <tr key={r}>
            {row.map((cell, i) => (
              <td key={i}>{cell}</td>
            ))}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function PreviewPane(props: { id: string; artifact: Artifact; openNotebook: (path: string) => Promise<void> }): JSX.Element {
  const { id, artifact, openNotebook } = props;
  const [shown, setShown] = React.useState<Preview | null>(null);
  const [error, setError] = React.useState<string | null>(null);
  const isImage = IMAGE.test(artifact.path);
  const isNotebook = artifact.path.endsWith('.ipynb');
  React.useEffect(() => {
    setShown(null);
    setError(null);
    if (!isImage && !isNotebook && (TEXT.test(artifact.path) || artifact.size < HEAD)) {
      preview(id, artifact).then(setShown, e => setError(errorMessage(e)));
    }
  }, [id, artifact.path, artifact.size]);
  return (
    <div className="jp-JobsPreview" aria-label={`preview of ${artifact.path}`}>
      <div className="jp-JobsPreview-head">
        <b>{artifact.path}</b> <span className="jp-JobsMuted">{size(artifact.size)}</span>
        <a className="jp-mod-styled jp-JobsButtonLink" href={artifactUrl(id, artifact.path)} download={artifact.path.split('/').pop()}>
          Download
        </a>
        {isNotebook ? (
          <button className="jp-mod-styled jp-mod-accept" onClick={() => openNotebook(artifact.path).catch(e => setError(errorMessage(e)))}>
            Open in JupyterLab
          </button>
        ) : null}
      </div>
      <ErrorNote error={error} />
      {isImage ? <img className="jp-JobsPreview-image" src={artifactUrl(id, artifact.path)} alt={artifact.path} /> : null}
      {shown?.kind === 'text' ? <pre className="jp-JobsPreview-text">{shown.text}</pre> : null}
      {shown?.kind === 'table' ? <Table rows={shown.rows} /> : null}
      {shown?.cut ? <p className="jp-JobsMuted">Only the beginning is shown; download the file for all of it.</p> : null}
    </div>
  );
}

export function Artifacts(props: {
  id: string;
  artifacts: readonly Artifact[];
  folder: string | null;
  openNotebook: (path: string) => Promise<void>;
  showFolder: (folder: string) => void;
}): JSX.Element {
  const { id, artifacts, folder, openNotebook, showFolder } = props;
  const [chosen, setChosen] = React.useState<string | null>(null);
  const artifact = artifacts.find(a => a.path === chosen) ?? null;
  if (!artifacts.length) {
    return <p className="jp-JobsMuted">No artifacts yet. A job writes them to $JOB_ARTIFACTS_DIR.</p>;
  }
  return (
    <div className="jp-JobsArtifactsTab">
      <div>
        {folder ? (
          <button className="jp-mod-styled" onClick={() => showFolder(folder)}>
            Show in the file browser
          </button>
        ) : null}
        <ul className="jp-JobsArtifacts" aria-label="artifacts">
        {artifacts.map(a => (
          <li key={a.path} className={a.path === chosen ? 'jp-mod-selected' : ''}>
            <button className="jp-JobsLink" aria-pressed={a.path === chosen} onClick={() => setChosen(a.path)}>
              {a.path}
            </button>{' '}
            <span className="jp-JobsMuted">{size(a.size)}</span>{' '}
            <a href={artifactUrl(id, a.path)} download={a.path.split('/').pop()} aria-label={`download ${a.path}`}>
              ⤓
            </a>
          </li>
          ))}
        </ul>
      </div>
      {artifact ? <PreviewPane id={id} artifact={artifact} openNotebook={openNotebook} /> : <p className="jp-JobsMuted">Choose a file to preview it.</p>}
    </div>
  );
}
