// workflows/: workflow runs: a run's graph (run.tsx) in its tab (widgets.tsx), the sidebar's
// list of runs (runs.tsx), and the runs' calls (api.ts).
//
// The main-area widget of a workflow run: its graph in a tab; the plugin (index.ts) tracks and
// restores it.
import { MainAreaWidget } from '@jupyterlab/apputils';
import { ReactWidget } from '@jupyterlab/ui-components';
import * as React from 'react';

import { RunView } from './run';

class RunContent extends ReactWidget {
  constructor(
    readonly runId: string,
    private readonly open: (id: string) => void
  ) {
    super();
    this.addClass('jp-JobsMain');
  }
  render(): JSX.Element {
    return <RunView id={this.runId} open={this.open} />;
  }
}

/** A workflow run as a graph of its jobs. */
export class RunTab extends MainAreaWidget<RunContent> {
  constructor(
    readonly runId: string,
    open: (id: string) => void
  ) {
    super({ content: new RunContent(runId, open) });
    this.id = `jupyter-jobs-run-${runId}`;
    this.title.label = `Run ${runId}`;
    this.title.closable = true;
  }
}
