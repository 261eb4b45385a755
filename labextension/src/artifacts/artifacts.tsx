// artifacts/: a job's artifacts: the list and preview (artifacts.tsx), a notebook artifact
// opened in JupyterLab (notebook.ts), and the artifacts' calls (api.ts).
//
// A job's artifacts: the list (size, download; a filter by path; all, or a folder's, as one zip)
// and a preview of the one chosen: images,
// text, CSV as a table (papaparse), JSON pretty-printed; notebooks open in JupyterLab.
import Papa from 'papaparse';
import * as React from 'react';

import { Artifact, errorMessage } from '../api';
import { ErrorNote } from '../common/common';
import { count } from '../common/words';
import { archiveUrl, artifactUrl, artifactsApi } from './api';

/** A preview reads at most this much of a file. */
const HEAD = 256 * 1024;
const IMAGE = /\.(png|jpe?g|gif|svg|webp|bmp)$/i;
/** Rows drawn at most: thousands of rows cost seconds a keystroke; the filter reaches the rest. */
const DRAWN = 500;
const TEXT = /\.(txt|log|md|py|r|jl|sh|yaml|yml|toml|ini|cfg|out|err|html|xml|tsv|csv|json|jsonl|ndjson)$/i;

export function size(bytes: number): string {
  const units = ['', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit ? `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}` : count(bytes, 'byte');
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
  const pane = React.useRef<HTMLDivElement>(null);
  // the pane stays beside the list; in a narrow tab it may still be out of view: brought in
  React.useEffect(() => {
    pane.current?.scrollIntoView({ block: 'nearest' });
  }, [artifact.path]);
  React.useEffect(() => {
    setShown(null);
    setError(null);
    if (!isImage && !isNotebook && (TEXT.test(artifact.path) || artifact.size < HEAD)) {
      preview(id, artifact).then(setShown, e => setError(errorMessage(e)));
    }
  }, [id, artifact.path, artifact.size]);
  return (
    <div className="jp-JobsPreview" ref={pane} aria-label={`preview of ${artifact.path}`}>
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
  const [filter, setFilter] = React.useState('');
  const needle = filter.trim();
  const matching = React.useMemo(() => {
    const lower = needle.toLowerCase();
    return lower ? artifacts.filter(a => a.path.toLowerCase().includes(lower)) : artifacts;
  }, [artifacts, needle]);
  // a folder filter ("part-3/") that every listed file is under: those can go as one zip
  const folderPrefix = needle.endsWith('/') && matching.length && matching.every(a => a.path.startsWith(needle)) ? needle : '';
  const artifact = artifacts.find(a => a.path === chosen) ?? null;
  if (!artifacts.length) {
    return <p className="jp-JobsMuted">No artifacts yet. A job writes them to $JOB_ARTIFACTS_DIR.</p>;
  }
  return (
    <div className="jp-JobsArtifactsTab">
      <div className="jp-JobsArtifactsSide">
        <div className="jp-JobsArtifactsTools">
          <input
            type="search"
            aria-label="filter artifacts by path"
            placeholder="Filter by path, e.g. plots/"
            value={filter}
            onChange={e => setFilter(e.target.value)}
          />
          <a className="jp-mod-styled jp-JobsButtonLink" href={archiveUrl(id)} download={`${id}-artifacts.zip`}>
            Download all
          </a>
          {folderPrefix ? (
            <a className="jp-mod-styled jp-JobsButtonLink" href={archiveUrl(id, folderPrefix)} download={`${id}-artifacts.zip`}>
              Download these
            </a>
          ) : null}
          {folder ? (
            <button className="jp-mod-styled" onClick={() => showFolder(folder)}>
              Show in the file browser
            </button>
          ) : null}
        </div>
        <span className="jp-JobsMuted" aria-live="polite">
          {matching.length > DRAWN
            ? `The first ${DRAWN.toLocaleString()} of ${matching.length.toLocaleString()} files: filter to find the others.`
            : `${matching.length.toLocaleString()} of ${count(artifacts.length, 'file')}`}
        </span>
        {/* the list scrolls on its own, so the preview beside it stays in view */}
        <ul className="jp-JobsArtifacts" aria-label="artifacts">
          {matching.slice(0, DRAWN).map(a => (
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
      {artifact ? (
        // keyed by path: a new pick starts empty instead of showing the last file's text under its name
        <PreviewPane key={artifact.path} id={id} artifact={artifact} openNotebook={openNotebook} />
      ) : (
        <p className="jp-JobsMuted">Choose a file to preview it.</p>
      )}
    </div>
  );
}
