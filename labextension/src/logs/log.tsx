// logs/: a job's log: this view (log.tsx) over a virtual log (logview.ts), fed by a LogFollower
// (follow.ts) over the log's stream (api.ts).
//
// A job's log: the LogView over the follower's buffer, with a toolbar to search (matches
// highlighted, Enter for the next one), wrap, jump to the first error, download, and follow.
import * as React from 'react';

import { errorMessage } from '../api/request';
import { count } from '../common/words';
import { logText } from './api';
import { LogFollower } from './follow';
import { LogView } from './logview';

/** The line count follows appends at most this often (the lines repaint once per frame). */
const COUNT_EVERY_MS = 250;

function save(name: string, text: string): void {
  const link = document.createElement('a');
  link.href = URL.createObjectURL(new Blob([text], { type: 'text/plain' }));
  link.download = name;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

/** The view and the live line count; `download`: what a cut line's note calls. */
function useLogView(follower: LogFollower, host: React.RefObject<HTMLDivElement>, download: () => void) {
  const [view, setView] = React.useState<LogView | null>(null);
  const [lines, setLines] = React.useState(follower.buffer.length);
  const [following, setFollowing] = React.useState(true);
  const downloadRef = React.useRef(download);
  downloadRef.current = download;
  React.useEffect(() => {
    const created = new LogView(follower.buffer);
    host.current!.appendChild(created.node);
    created.onFollowChanged(setFollowing);
    created.onDownload(() => downloadRef.current());
    let pending = 0;
    const recount = () => {
      pending = 0;
      setLines(follower.buffer.length);
    };
    const repaint = () => {
      created.schedule();
      if (!pending) {
        pending = window.setTimeout(recount, COUNT_EVERY_MS);
      }
    };
    follower.appended.connect(repaint);
    created.schedule();
    recount();
    setView(created);
    return () => {
      follower.appended.disconnect(repaint);
      window.clearTimeout(pending);
      created.dispose();
      created.node.remove();
    };
  }, [follower]);
  return { view, lines, following };
}

function Search({ follower, view }: { follower: LogFollower; view: LogView | null }): JSX.Element {
  const [needle, setNeedle] = React.useState('');
  const [hits, setHits] = React.useState<number[]>([]);
  const [at, setAt] = React.useState(-1);
  const go = (list: number[], index: number) => {
    setAt(index);
    if (index >= 0 && list.length) {
      view?.highlight(needle, list[index]);
      view?.scrollToLine(list[index]);
    }
  };
  const find = (text: string) => {
    setNeedle(text);
    const found = follower.buffer.search(text);
    setHits(found);
    setAt(-1);
    view?.highlight(text);
  };
  const onKey = (e: React.KeyboardEvent) => {
    if (e.key === 'Enter' && hits.length) {
      const list = follower.buffer.search(needle); // the log may have grown
      setHits(list);
      go(list, e.shiftKey ? (at <= 0 ? list.length - 1 : at - 1) : (at + 1) % list.length);
    }
  };
  return (
    <span className="jp-JobsLogSearch">
      <input
        type="search"
        aria-label="search the log"
        placeholder="Search the log"
        value={needle}
        onChange={e => find(e.target.value)}
        onKeyDown={onKey}
      />
      <span className="jp-JobsMuted" aria-live="polite">
        {needle ? (hits.length ? `${at >= 0 ? at + 1 : '–'} of ${count(hits.length, 'line')}` : 'no match') : ''}
      </span>
    </span>
  );
}

export function JobLog({ follower, name }: { follower: LogFollower; name: string }): JSX.Element {
  const host = React.useRef<HTMLDivElement>(null);
  const [note, setNote] = React.useState('');
  // the log as the job wrote it, from the server: the view keeps what a terminal shows
  const download = () => {
    setNote('Downloading…');
    logText(follower.id).then(
      text => (setNote(''), save(`${name}.log`, text)),
      error => setNote(`Cannot download the log: ${errorMessage(error)}`)
    );
  };
  const { view, lines, following } = useLogView(follower, host, download);
  const [wrap, setWrap] = React.useState(false);
  const firstError = () => {
    const line = follower.buffer.firstError();
    setNote(line === -1 ? 'No error lines.' : '');
    if (line !== -1) {
      view?.highlight('', line);
      view?.scrollToLine(line);
    }
  };
  return (
    <div className="jp-JobsLogBox">
      <div className="jp-JobsLogToolbar" role="toolbar" aria-label="log">
        <Search follower={follower} view={view} />
        <label className="jp-JobsLogWrap">
          <input type="checkbox" checked={wrap} onChange={e => (setWrap(e.target.checked), view?.setWrap(e.target.checked))} />
          Wrap
        </label>
        <button className="jp-mod-styled" onClick={firstError}>
          First error
        </button>
        <button className="jp-mod-styled" onClick={download}>
          Download
        </button>
        <button className="jp-mod-styled" disabled={following} onClick={() => view?.scrollToEnd()}>
          Follow
        </button>
        <span className="jp-JobsSection jp-JobsLogCount">
          Log <span className="jp-JobsMuted">{count(lines, 'line')}</span>
        </span>
        {note ? <span className="jp-JobsMuted">{note}</span> : null}
      </div>
      <div ref={host} className="jp-JobsLogHost" />
    </div>
  );
}
