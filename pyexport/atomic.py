"""Folders appear whole or not at all: a SavedModel is written into a
temporary folder beside its destination, then swapped into place."""

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
