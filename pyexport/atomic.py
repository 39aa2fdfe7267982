"""Folders appear whole or not at all: a SavedModel is written into a
temporary folder beside its destination, then swapped into place."""

import contextlib
import json
import os
import shutil
import tempfile


def swap_into_place(tmp, dest):
    """Renames the finished folder tmp to dest; an existing dest is moved
    aside first and removed after, so dest is always whole (old or new)."""
    if os.path.exists(dest):
        old = tempfile.mkdtemp(prefix=".old-", dir=os.path.dirname(os.path.abspath(dest)))
        os.rename(dest, os.path.join(old, "x"))
        os.rename(tmp, dest)
        shutil.rmtree(old)
    else:
        os.rename(tmp, dest)


@contextlib.contextmanager
def new_folder(dest, prefix):
    """Yields a new temporary folder beside dest (made readable, as mkdir
    makes folders) to write into; when the block ends it is swapped into
    place as dest, and when the block raises it is removed."""
    parent = os.path.dirname(os.path.abspath(dest))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=prefix, dir=parent)
    os.chmod(tmp, 0o755)
    try:
        yield tmp
        swap_into_place(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json(path, obj):
    """obj as indented JSON with sorted keys and a final newline."""
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")
