// The live chart a `%%job` cell shows when its job reports metrics: a MIME renderer for
// `application/vnd.jupyter-jobs.metrics+json` ({"job_id": ..., "following": true while the
// cell follows its job}) that follows the job's series over REST. Where it cannot render
// (nbclient, a terminal), the output's text is shown instead. A cell that follows its job tells
// the notifications so (notifications/watch.ts): its end shows in the cell.
import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { ReactWidget } from '@jupyterlab/ui-components';
import * as React from 'react';

import { watching } from '../notifications/watch';
import { MetricsFollower } from './follow';
import { MetricsView } from './metrics';

export const METRICS_MIME = 'application/vnd.jupyter-jobs.metrics+json';

class MetricsOutput extends ReactWidget implements IRenderMime.IRenderer {
  private follower: MetricsFollower | null = null;
  private unwatch: (() => void) | null = null;

  constructor() {
    super();
    this.addClass('jp-JobsCellMetrics');
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    const data = (model.data[METRICS_MIME] ?? {}) as { job_id?: string; following?: boolean };
    const id = String(data.job_id ?? '');
    if (id && this.follower?.id !== id) {
      this.follower?.dispose();
      this.follower = new MetricsFollower(id);
    }
    this.unwatch?.();
    // on screen while its notebook is the tab in front (a closed notebook disposes this)
    this.unwatch = id && data.following ? watching.watch(id, 'cell', () => this.isVisible) : null;
    this.update();
  }

  render(): JSX.Element | null {
    return this.follower ? <MetricsView follower={this.follower} only="custom" /> : null;
  }

  dispose(): void {
    this.unwatch?.();
    this.follower?.dispose();
    super.dispose();
  }
}

export const metricsRenderer: IRenderMime.IRendererFactory = {
  safe: true,
  mimeTypes: [METRICS_MIME],
  defaultRank: 50,
  createRenderer: () => new MetricsOutput()
};
