"""Runs a notebook inside a job: `python -c "<this file>" NOTEBOOK OUTPUT PARAMETERS KERNEL`.

It is handed to the job as its source (so it needs nothing of jupyter_jobs where it runs, in
any image), and needs only the packages made for the job: papermill injects the parameters
(a cell after the one tagged `parameters`, as papermill does), nbclient executes the cells.
While it runs it prints each cell as it starts and its outputs as they come, reports
`progress` (cells done / cells total) to $JOB_METRICS_FILE, and saves the executed notebook
after every cell, so it is there (with the error) when a cell fails. What went wrong is also
left as `notebook.json` beside the metrics file, for the service to name in the job's message.
"""

import json
import os
import sys
import time

MISSING = 3  # exit code: this environment cannot execute notebooks


def _status(**fields):
    """Leave the outcome where the service reads it (beside $JOB_METRICS_FILE)."""
    metrics = os.environ.get("JOB_METRICS_FILE")
    if metrics:
        with open(os.path.join(os.path.dirname(metrics), "notebook.json"), "w", encoding="utf-8") as fh:
            json.dump(fields, fh)


def _progress(done, total):
    metrics = os.environ.get("JOB_METRICS_FILE")
    if metrics:
        with open(metrics, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"time": round(time.time(), 3), "step": done, "progress": done / max(total, 1)}) + "\n")


def _fail(message, code=1, **fields):
    print(f"[jupyter_jobs] {message}", file=sys.stderr)
    _status(status="failed", message=message, **fields)
    return code


def _echoing(base):
    """A NotebookClient that echoes each cell's stream and text outputs as they arrive."""

    class Client(base):
        def output(self, outs, msg, display_id, cell_index):
            content, kind = msg["content"], msg["msg_type"]
            if kind == "stream":
                (sys.stderr if content.get("name") == "stderr" else sys.stdout).write(content.get("text", ""))
            elif kind in ("execute_result", "display_data"):
                text = content.get("data", {}).get("text/plain")
                if text:
                    print(text)
            elif kind == "error":
                print("\n".join(content.get("traceback", [])), file=sys.stderr)
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            return super().output(outs, msg, display_id, cell_index)

    return Client


def _client(nbformat, base, nb, kernel, output):
    """The client, with hooks that say which cell runs and keep the executed copy current."""
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    position = {index: n for n, index in enumerate(code, 1)}
    saved = [0.0]

    def started(cell, cell_index, **_):
        if cell_index in position:
            print(f"[jupyter_jobs] cell {position[cell_index]}/{len(code)}", flush=True)

    def executed(cell, cell_index, **_):
        if cell_index in position:
            _progress(position[cell_index], len(code))
            if time.monotonic() - saved[0] >= 0.5:  # the executed copy, kept current without a write per cell
                nbformat.write(nb, output)
                saved[0] = time.monotonic()

    # ipykernel's own start-up warnings are not the job's output
    quiet = ["--IPKernelApp.log_level=ERROR"] if kernel.startswith("python") else []
    client = _echoing(base)(nb, kernel_name=kernel, resources={"metadata": {"path": os.getcwd()}},
                            extra_arguments=quiet, on_cell_start=started, on_cell_executed=executed)
    return client, code, position


def main(argv):
    source, output, parameters, kernel = argv[:4]
    output = os.path.join(os.environ.get("JOB_ARTIFACTS_DIR", "."), output)
    # jsonschema (through nbformat) imports rfc3987_syntax when it is installed, and that builds
    # ~35 Earley parsers at import: about 1 s of every notebook job, for the `iri` format no notebook
    # schema uses (python-jsonschema/jsonschema#1428). None in sys.modules makes that import fail,
    # which jsonschema already takes as "not installed".
    sys.modules.setdefault("rfc3987_syntax", None)
    try:
        import nbformat
        from nbclient import NotebookClient
        from nbclient.exceptions import CellExecutionError
        from papermill.iorw import load_notebook_node
        from papermill.parameterize import parameterize_notebook
    except ImportError as exc:
        return _fail(f"this environment cannot run notebooks: {exc}. The image (or the Python that runs "
                     "the job) needs papermill, nbclient and ipykernel: pip install papermill ipykernel", MISSING)
    try:
        nb = load_notebook_node(source)  # with the metadata papermill keeps (tags, parameters)
        kernel = kernel or nb.metadata.get("kernelspec", {}).get("name") or "python3"
        values = json.loads(parameters)
        if values:
            nb = parameterize_notebook(nb, values, kernel_name=kernel)
    except Exception as exc:
        return _fail(f"the notebook could not be read or parameterised: {type(exc).__name__}: {exc}")
    client, code, position = _client(nbformat, NotebookClient, nb, kernel, output)
    _progress(0, len(code))
    try:
        client.execute()
    except CellExecutionError as exc:
        nbformat.write(nb, output)
        failed = next((i for i in code if any(o.get("output_type") == "error" for o in nb.cells[i].get("outputs", []))),
                      None)
        where = f"cell {position[failed]} of {len(code)}" if failed is not None else "a cell"
        return _fail(f"the notebook failed: {where} raised {exc.ename}: {exc.evalue}", cell=position.get(failed))
    except Exception as exc:  # the kernel died, or could not start
        nbformat.write(nb, output)
        return _fail(f"the notebook could not run: {type(exc).__name__}: {exc}")
    nbformat.write(nb, output)
    _status(status="succeeded")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
