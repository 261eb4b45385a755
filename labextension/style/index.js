import './base.css';
import './workflows.css';
import './datasets.css';
import './deployments.css';
