"""``manage_models``: which checkpoints are present, download missing ones, where to put files offline."""

import fiftyone.operators as foo
import fiftyone.operators.types as types

from samtrack_ops import models


def checkpoint_table():
    """Markdown table of every registry checkpoint: present or missing, and its expected path."""
    rows = ["| checkpoint | family | present | expected at |", "|---|---|---|---|"]
    for row in models.list_checkpoints():
        rows.append(f"| {row['name']} | {row['family']} | {'yes' if row['present'] else 'no'} | `{row['path']}` |")
    return "\n".join(rows)


def _missing_names():
    return [row["name"] for row in models.list_checkpoints() if not row["present"]]


def download(names, progress=None):
    """Downloads checkpoints into the cache.

    Returns:
        ``({name: path}, {name: instructions})``: files now present, and for those that could not be
        fetched the message saying which file, from where, and where to put it by hand
    """
    present, failed = {}, {}
    for position, name in enumerate(names):

        def report(done, total, position=position, name=name):
            if progress is not None and total:
                progress((position + done / total) / len(names), f"{name}: {done:,} / {total:,} bytes")

        try:
            present[name] = str(models.resolve_checkpoint(name, progress=report))
        except models.CheckpointError as error:
            failed[name] = str(error)
    return present, failed


class ManageModels(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="manage_models",
            label="samtrack: manage model checkpoints",
            description="List SAM / DeAOT / Grounding-DINO checkpoints and download the missing ones",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_delegation(self, ctx):
        # downloads are gigabytes: run them in a delegated worker
        return bool(ctx.params.get("download"))

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.view("checkpoints", types.Notice(label=f"Cache folder: {models.cache_dir()}"))
        inputs.md(checkpoint_table(), name="table")
        missing = _missing_names()
        if not missing:
            inputs.view("all_present", types.Notice(label="Every checkpoint is present."))
            return types.Property(inputs, view=types.View(label="Model checkpoints"))
        choices = types.Dropdown(multiple=True)
        for name in missing:
            choices.add_choice(name, label=name)
        inputs.list("download", types.String(), label="Download", view=choices,
                    description="missing checkpoints to download (delegated); offline, the result says "
                                "where to put each file by hand")
        return types.Property(inputs, view=types.View(label="Model checkpoints"))

    def execute(self, ctx):
        names = list(ctx.params.get("download") or [])
        unknown = [name for name in names if name not in models.CHECKPOINTS]
        if unknown:
            raise ValueError(f"unknown checkpoints {unknown}; expected some of {sorted(models.CHECKPOINTS)}")

        def progress(fraction, label):
            ctx.set_progress(progress=fraction, label=label)

        present, failed = download(names, progress=progress)
        return {"table": checkpoint_table(), "downloaded": present, "failed": failed}

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.md(ctx.results.get("table", ""), name="table")
        outputs.obj("downloaded", label="Present now (name: path)")
        outputs.obj("failed", label="Not downloaded: where to get and put each file")
        return types.Property(outputs)
