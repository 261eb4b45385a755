// A job's log: the LogView (only visible lines in the DOM) over the follower's buffer, and
// its line count.
import * as React from 'react';

import { LogFollower } from '../follow';
import { LogView } from '../logview';

/** The line count follows appends at most this often (the lines repaint once per frame). */
const COUNT_EVERY_MS = 250;

export function JobLog({ follower }: { follower: LogFollower }): JSX.Element {
  const host = React.useRef<HTMLDivElement>(null);
  const [lines, setLines] = React.useState(follower.buffer.length);
  React.useEffect(() => {
    const view = new LogView(follower.buffer);
    host.current!.appendChild(view.node);
    let pending = 0;
    const count = () => {
      pending = 0;
      setLines(follower.buffer.length);
    };
    const repaint = () => {
      view.schedule();
      if (!pending) {
        pending = window.setTimeout(count, COUNT_EVERY_MS);
      }
    };
    follower.appended.connect(repaint);
    view.schedule();
    count();
    return () => {
      follower.appended.disconnect(repaint);
      window.clearTimeout(pending);
      view.dispose();
      view.node.remove();
    };
  }, [follower]);
  return (
    <div className="jp-JobsLogBox">
      <div className="jp-JobsSection">
        Log <span className="jp-JobsMuted">{lines.toLocaleString()} lines</span>
      </div>
      <div ref={host} className="jp-JobsLogHost" />
    </div>
  );
}
