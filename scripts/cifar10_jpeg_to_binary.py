"""Write CIFAR-10's official binary layout from the JPEG copy in ../shared/data.

    .venv/bin/python scripts/cifar10_jpeg_to_binary.py ../shared/data/cifar10-jpeg.tar.gz OUT

OUT/cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin (records of a label
byte and the R, G, B planes of a 32×32 image) and batches.meta.txt, for trying
the binary loader on a machine that cannot download the official release.
The pixels are the JPEG copy's, decoded by TensorFlow, not the original bytes.
"""

import os
import sys
import tarfile

import numpy as np
import tensorflow as tf

CLASSES = "airplane automobile bird cat deer dog frog horse ship truck".split()


def main(archive, out):
    dest = os.path.join(out, "cifar-10-batches-bin")
    os.makedirs(dest, exist_ok=True)
    splits = {"train": [], "test": []}
    with tarfile.open(archive) as tar:
        for m in sorted(tar.getmembers(), key=lambda m: m.name):
            parts = m.name.split("/")
            if not m.isfile() or len(parts) != 4:
                continue
            _, split, cls, _ = parts
            img = tf.io.decode_jpeg(tar.extractfile(m).read(), channels=3).numpy()
            rec = np.concatenate([[CLASSES.index(cls)], img.transpose(2, 0, 1).ravel()]).astype(np.uint8)
            splits[split].append(rec)
    rng = np.random.default_rng(0)  # the official batches are in random order too
    train = np.stack(splits["train"])[rng.permutation(len(splits["train"]))]
    for i, batch in enumerate(np.array_split(train, 5), start=1):
        batch.tofile(os.path.join(dest, "data_batch_%d.bin" % i))
    np.stack(splits["test"]).tofile(os.path.join(dest, "test_batch.bin"))
    with open(os.path.join(dest, "batches.meta.txt"), "w") as f:
        f.write("\n".join(CLASSES) + "\n\n")
    print("wrote", dest, len(train), "train", len(splits["test"]), "test")


if __name__ == "__main__":
    main(*sys.argv[1:])
