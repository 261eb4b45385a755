// The deployments' calls: the list, create, change (a new spec, a version served again, new
// replicas) and delete.
import { json } from '../api/request';
import type { Deployment, DeploymentInput, DeploymentList } from '../api/types';

export const deploymentsApi = {
  list: () => json<DeploymentList>(['deployments']).then(reply => reply.deployments),
  create: (input: DeploymentInput) => json<Deployment>(['deployments'], { method: 'POST', body: JSON.stringify(input) }),
  update: (name: string, change: DeploymentInput) =>
    json<Deployment>(['deployments', name], { method: 'PUT', body: JSON.stringify(change) }),
  remove: (name: string) => json<void>(['deployments', name], { method: 'DELETE' })
};
