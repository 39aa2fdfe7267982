"""Read a run folder's embedding-projector files with TensorBoard's own plugin.

    .venv/bin/python scripts/check_projector.py RUN_DIR

TensorBoard's projector plugin (the one `tensorboard --logdir runs/` serves)
is pointed at RUN_DIR as a log folder holding one run, and asked, through its
HTTP routes, for what the projector page asks: the runs with embeddings, the
run's config, the tensor, the metadata and the sprite. Each answer is checked
against the run's evaluation files (features_test.npy, labels_test.npy): the
tensor's rows are the features of the test images the metadata's index
column names, its labels theirs, and the sprite holds one thumbnail of the
configured size per row. Prints a summary line; exits non-zero on a mismatch.
"""

import json
import math
import os
import struct
import sys

import numpy as np
from werkzeug.test import Client
from werkzeug.wrappers import Response

from tensorboard.plugins import base_plugin
from tensorboard.plugins.projector.projector_plugin import ProjectorPlugin


class _Run:
    def __init__(self, name):
        self.run_name = name


class _Provider:
    """The one method of a data provider the projector plugin calls."""

    def list_runs(self, ctx, experiment_id):
        return [_Run(".")]


def main(run_dir):
    plugin = ProjectorPlugin(base_plugin.TBContext(logdir=os.path.abspath(run_dir), data_provider=_Provider()))
    routes = plugin.get_plugin_apps()

    def get(route, **args):
        query = "&".join(f"{k}={v}" for k, v in args.items())
        r = Client(routes[route], Response).get(route + ("?" + query if query else ""))
        if r.status_code != 200:
            sys.exit(f"{route}: HTTP {r.status_code}: {r.get_data(as_text=True)}")
        return r.get_data()

    runs = json.loads(get("/runs"))
    if runs != ["."]:
        sys.exit(f"/runs: {runs}, want the run folder")
    config = json.loads(get("/info", run="."))
    emb = config["embeddings"]
    if len(emb) != 1:
        sys.exit(f"/info: {len(emb)} embeddings, want 1")
    emb = emb[0]
    name = emb["tensorName"]
    n, dim = (int(x) for x in emb["tensorShape"])
    tensor = np.frombuffer(get("/tensor", run=".", name=name), dtype=np.float32).reshape(n, dim)
    meta = get("/metadata", run=".", name=name).decode().splitlines()
    header, rows = meta[0].split("\t"), [line.split("\t") for line in meta[1:]]
    if header != ["class", "label", "index"] or len(rows) != n:
        sys.exit(f"/metadata: header {header}, {len(rows)} rows for {n} points")
    index = np.array([int(r[2]) for r in rows])
    labels = np.array([int(r[1]) for r in rows])
    feats = np.load(os.path.join(run_dir, "features_test.npy"))
    test_labels = np.load(os.path.join(run_dir, "labels_test.npy"))
    if not np.array_equal(tensor, feats[index]):
        sys.exit(f"/tensor: rows differ from features_test.npy (max {np.abs(tensor - feats[index]).max()})")
    if not np.array_equal(labels, test_labels[index]):
        sys.exit("/metadata: labels differ from labels_test.npy")
    if len(set(index.tolist())) != n:
        sys.exit("/metadata: an image appears twice")
    png = get("/sprite_image", run=".", name=name)
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        sys.exit("/sprite_image: not a PNG")
    size = struct.unpack(">II", png[16:24])  # IHDR: width, height
    w, h = (int(x) for x in emb["sprite"]["singleImageDim"])
    cols = math.ceil(math.sqrt(n))
    if size != (cols * w, cols * h) or max(size) > 8192:
        sys.exit(f"/sprite_image: {size}, want {cols}×{cols} thumbnails of {w}×{h}")
    print(f"projector: {n} points of {dim} dimensions, {len(set(labels.tolist()))} classes, sprite {size[0]}x{size[1]} of {w}x{h}: read through TensorBoard's plugin, equal to the run's features and labels")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
