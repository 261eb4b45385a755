// The datasets' calls: the list (each with its newest version), one dataset's versions, a new
// version (from a folder under the root, or from a finished job's artifacts), one version with
// its lineage, and deleting a version (a 409 while unfinished jobs read it).
import { json } from '../api/request';
import type { DatasetMade, DatasetVersionDetail, Schemas } from '../api/types';

/** Where a new version comes from: a folder under the server's root, or a job's artifacts (all,
 * or one file or folder of them). */
export type DatasetSource = { folder: string } | { job: string; path?: string };

export const datasetsApi = {
  datasets: () => json<Schemas['DatasetList']>(['datasets']),
  dataset: (name: string) => json<Schemas['DatasetVersions']>(['datasets', name]),
  create: (name: string, source: DatasetSource) =>
    json<DatasetMade>(['datasets', name, 'versions'], { method: 'POST', body: JSON.stringify(source) }),
  version: (name: string, version: number) => json<DatasetVersionDetail>(['datasets', name, 'versions', String(version)]),
  remove: (name: string, version: number) => json<void>(['datasets', name, 'versions', String(version)], { method: 'DELETE' })
};
