// workflows/: workflow runs: a run's graph (run.tsx) in its tab (widgets.tsx), the sidebar's
// list of runs and named workflows (runs.tsx), a named workflow's page (definition.tsx) in its
// tab (widgets.tsx), and the calls (api.ts).
//
// The main-area widget of a workflow run: its graph in a tab, and below it the job picked in
// the graph (the job view of a job's own tab); the plugin (index.ts) opens every job of a run
// here, and tracks and restores the tab with its picked job.
import { MainAreaWidget } from '@jupyterlab/apputils';
import { ReactWidget } from '@jupyterlab/ui-components';
import { ISignal, Signal } from '@lumino/signaling';
import * as React from 'react';

import { JobActions, JobView } from '../jobs/job';
import { JobModel } from '../jobs/jobmodel';
import { DefinitionView } from './definition';
import { RunView } from './run';

class RunContent extends ReactWidget {
  private _detail: JobModel | null = null;
  private readonly _selected = new Signal<RunContent, string | null>(this);
  /** On screen: the tab in front of its area; the job shown under the graph is watched then. */
  private readonly shown = (): boolean => this.isVisible;

  constructor(
    readonly runId: string,
    private readonly actions: JobActions
  ) {
    super();
    this.addClass('jp-JobsMain');
    this.addClass('jp-JobsRunTab');
  }

  /** The job shown under the graph, if any. */
  get selected(): string | null {
    return this._detail?.id ?? null;
  }
  get selectedChanged(): ISignal<RunContent, string | null> {
    return this._selected;
  }

  /** Show one of the run's jobs under the graph (null: none). */
  showJob(jobId: string | null): void {
    if (jobId === this.selected) {
      return;
    }
    this._detail?.dispose();
    this._detail = jobId ? new JobModel(jobId) : null;
    this.update();
    this._selected.emit(jobId);
  }

  render(): JSX.Element {
    const detail = this._detail;
    return (
      <>
        <RunView id={this.runId} open={id => this.showJob(id)} selected={this.selected} />
        {detail ? (
          <section className="jp-JobsRun-detail" aria-label={`job ${detail.id} of this run`}>
            <button
              className="jp-JobsRun-detailClose jp-mod-styled"
              title="Close this job's view (the graph stays)"
              aria-label="Close the job's view"
              onClick={() => this.showJob(null)}
            >
              ×
            </button>
            <JobView
              key={detail.id}
              detail={detail}
              actions={{ ...this.actions, closed: () => this.showJob(null) }}
              shown={this.shown}
            />
          </section>
        ) : null}
      </>
    );
  }

  dispose(): void {
    this._detail?.dispose();
    this._detail = null;
    super.dispose();
  }
}

/** A workflow run as a graph of its jobs, with the one picked shown below it. */
export class RunTab extends MainAreaWidget<RunContent> {
  constructor(
    readonly runId: string,
    actions: JobActions
  ) {
    super({ content: new RunContent(runId, actions) });
    this.id = `jupyter-jobs-run-${runId}`;
    this.title.label = `Run ${runId}`;
    this.title.closable = true;
  }

  /** Show one of the run's jobs in this tab. */
  showJob(jobId: string | null): void {
    this.content.showJob(jobId);
  }
}

class DefinitionContent extends ReactWidget {
  /** On screen: the tab in front of its area; its runs are refreshed then. */
  private readonly shown = (): boolean => this.isVisible;

  constructor(
    readonly definition: string,
    private readonly openRun: (id: string) => void
  ) {
    super();
    this.addClass('jp-JobsMain');
    this.addClass('jp-JobsDefinitionTab');
  }

  render(): JSX.Element {
    return <DefinitionView name={this.definition} openRun={this.openRun} shown={this.shown} />;
  }
}

/** A named workflow's page: its versions, its runs, and a run of it with inputs. */
export class DefinitionTab extends MainAreaWidget<DefinitionContent> {
  constructor(
    readonly definition: string,
    openRun: (id: string) => void
  ) {
    super({ content: new DefinitionContent(definition, openRun) });
    this.id = `jupyter-jobs-workflow-${definition}`;
    this.title.label = `Workflow ${definition}`;
    this.title.closable = true;
  }
}
