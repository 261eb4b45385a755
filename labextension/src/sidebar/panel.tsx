// sidebar/: the sidebar: its widget (panel.tsx) and its state (model.ts: the open view, the
// job list, the workflow runs, the schedules, the datasets, the models, the deployments); the views
// it shows live in their features' folders (jobs/, workflows/, schedules/, datasets/, deployments/).
//
// The sidebar: a header (open the jobs page, new job), a switch between jobs, workflow runs
// (with the named workflows), schedules, datasets, models and deployments, then the compact live list, the quick form or the form of a new schedule. A
// job or a run opens in its own main-area tab.
import { ReactWidget } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import * as React from 'react';

import { useSignal } from '../common/common';
import { DatasetList } from '../datasets/datasets';
import { DeploymentList } from '../deployments/deployments';
import { JobForm } from '../jobs/form';
import { JobList } from '../jobs/list';
import { ScheduleForm } from '../schedules/scheduleform';
import { ScheduleList } from '../schedules/schedules';
import { RunList } from '../workflows/runs';
import { JobsModel } from './model';

function Switch({ model }: { model: JobsModel }): JSX.Element {
  const kinds = [
    ['list', 'Jobs'],
    ['runs', 'Workflow runs'],
    ['schedules', 'Schedules'],
    ['datasets', 'Datasets'],
    ['models', 'Models'],
    ['deployments', 'Deployments']
  ] as const;
  return (
    <div className="jp-JobsSwitch" role="tablist" aria-label="what the list shows">
      {kinds.map(([kind, label]) => (
        <button
          key={kind}
          role="tab"
          aria-selected={model.view.kind === kind}
          className={`jp-JobsSwitch-tab${model.view.kind === kind ? ' jp-mod-active' : ''}`}
          onClick={() => model.open({ kind })}
        >
          {label}
        </button>
      ))}
    </div>
  );
}

function JobsApp(props: { model: JobsModel; openPage: () => void; openHost?: () => void }): JSX.Element {
  const { model, openPage, openHost } = props;
  useSignal(model.changed);
  const { view } = model;
  return (
    <div className="jp-JobsApp">
      <div className="jp-JobsHeader">
        <span className="jp-JobsHeader-title">Jobs</span>
        <span className="jp-JobsButtons">
          <button className="jp-mod-styled" onClick={openPage} title="All jobs in a wide table (main area)">
            Open all
          </button>
          {openHost ? (
            <button className="jp-mod-styled" onClick={openHost} title="The host's GPUs, the queue across users, GPU-hours">
              GPUs
            </button>
          ) : null}
          <button className="jp-mod-styled jp-mod-accept" onClick={() => model.open({ kind: 'form', draft: {} })}>
            New job
          </button>
        </span>
      </div>
      {view.kind !== 'form' && view.kind !== 'new-schedule' ? <Switch model={model} /> : null}
      {view.kind === 'list' ? <JobList model={model} /> : null}
      {view.kind === 'runs' ? <RunList model={model} /> : null}
      {view.kind === 'schedules' ? <ScheduleList model={model} /> : null}
      {view.kind === 'datasets' ? <DatasetList key="datasets" model={model} datasets={model.datasets} /> : null}
      {view.kind === 'models' ? <DatasetList key="models" model={model} datasets={model.models} /> : null}
      {view.kind === 'deployments' ? <DeploymentList model={model} /> : null}
      {view.kind === 'form' ? <JobForm key={JSON.stringify(view.draft)} model={model} draft={view.draft} /> : null}
      {view.kind === 'new-schedule' ? (
        <ScheduleForm key={JSON.stringify(view.spec)} model={model} spec={view.spec} back={view.back} />
      ) : null}
    </div>
  );
}

/** The sidebar widget. */
export class JobsPanel extends ReactWidget {
  readonly model: JobsModel;

  constructor(
    openJob: (id: string) => void,
    openRun: (id: string) => void,
    private readonly openPage: () => void,
    private readonly openHost?: () => void,
    openNotebook?: (path: string) => void,
    openDefinition?: (name: string) => void
  ) {
    super();
    this.model = new JobsModel(() => this.isVisible, openJob, openRun, openNotebook, openDefinition);
    this.id = 'jupyter-jobs-panel';
    this.addClass('jp-JobsPanel');
  }

  render(): JSX.Element {
    return <JobsApp model={this.model} openPage={this.openPage} openHost={this.openHost} />;
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    void this.model.poll.refresh();
  }

  dispose(): void {
    this.model.dispose();
    super.dispose();
  }
}
