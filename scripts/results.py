"""Run the objectives grid and write docs/results.md.

    source third_party/tfenv.sh
    .venv/bin/python scripts/results.py [--data fashion_mnist,cifar10] [--objectives seed,local_nce,local_jsd] [--augment off,on]

For each data set, objective and augmentation setting it exports the model,
trains it for the data set's epochs (Fashion-MNIST 2, CIFAR-10 5, batch 64)
and evaluates it (`runner train` ends with `runner eval`'s report). A row whose
run folder already holds a report.json for the full schedule is reused, so the
grid can be run in parts. The tables give each row's command, and the commit,
the machine and the wall time of the measurement.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = {
    "fashion_mnist": {"config": "configs/fashion_mnist_seed.yaml", "epochs": 2, "flags": []},
    "cifar10": {"config": "configs/cifar10_seed.yaml", "epochs": 5, "flags": ["--data.path", "../shared/data/cifar10-jpeg.tar.gz"]},
}
RUNNER = os.path.join(ROOT, ".build", "runner")


def sh(cmd, log):
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, check=True)


def flags(ds, objective, augment):
    f = ["--loss.objective", objective, "--model.augment=" + ("true" if augment else "false")]
    if objective != "seed":
        f += ["--loss.beta", "1"]  # the local term alone, unweighted (alpha has no term to weigh)
    return f + ["--export_dir", "exports/grid/%s-%s-%s" % (ds, objective, "aug" if augment else "noaug")]


def run(ds, objective, augment, log, measure=True):
    d = DATA[ds]
    name = "%s-%s-%s" % (ds, objective, "aug" if augment else "noaug")
    run_dir = os.path.join("runs", "grid", name)
    report = os.path.join(ROOT, run_dir, "report.json")
    f = flags(ds, objective, augment) + d["flags"]
    train = [RUNNER, "train", "--config", d["config"], "--run-dir", run_dir, "--train.epochs", str(d["epochs"])] + f
    if os.path.exists(report):
        with open(report) as fh:
            rep = json.load(fh)
        timing = json.load(open(os.path.join(ROOT, run_dir, "timing.json")))
        return rep, train, timing["seconds"]
    if not measure:
        return None, train, None
    t = time.time()
    sh([RUNNER, "export", "--config", d["config"]] + f, log)
    sh(train, log)
    seconds = time.time() - t
    with open(os.path.join(ROOT, run_dir, "timing.json"), "w") as fh:
        json.dump({"seconds": seconds}, fh)
    with open(report) as fh:
        return json.load(fh), train, seconds


def row(label, s, seconds, cmd):
    probe = s.get("linear_probe") or {}
    return "| %s | %.4f | %.4f | %.4f | %s | %s | `%s` |" % (
        label, s["knn"]["weighted"], s["knn"]["majority"], s["knn"]["nn1"],
        "%.4f" % probe["accuracy"] if probe else "–", seconds, cmd)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="fashion_mnist,cifar10")
    ap.add_argument("--objectives", default="seed,local_nce,local_jsd")
    ap.add_argument("--augment", default="off,on")
    ap.add_argument("--out", default="docs/results.md")
    ap.add_argument("--no-run", action="store_true", help="only tabulate the rows already measured; list the others as not run")
    a = ap.parse_args()
    os.makedirs(os.path.join(ROOT, ".build"), exist_ok=True)
    subprocess.run(["go", "build", "-o", RUNNER, "./runner"], cwd=ROOT, check=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    log = os.path.join(ROOT, "runs", "grid", "grid.log")
    os.makedirs(os.path.dirname(log), exist_ok=True)
    machine = "%s, %d cores, %s" % (platform.processor() or platform.machine(), os.cpu_count(), platform.platform())
    out = ["# Objectives measured side by side", "",
           "Written by `scripts/results.py` at commit %s on %s (no GPU)." % (commit, machine),
           "Weighted kNN: k = 200, t = 0.1, cosine on z_mean; majority: k = 20; probe: linear, on frozen features (see the README).",
           "Wall time: export + training + evaluation, in seconds. Each command trains and evaluates; run "
           "`go run ./runner export` with the same --config and flags first (or the whole grid with "
           "`.venv/bin/python scripts/results.py`, after `source third_party/tfenv.sh`).",
           "Raw pixels: the same evaluation with the pixels, scaled as the model's input, as features.", ""]
    for ds in a.data.split(","):
        d = DATA[ds]
        out += ["## %s, %d epochs, batch 64" % (ds, d["epochs"]), "",
                "| objective | kNN weighted | kNN majority | 1-NN | linear probe | wall s | command |",
                "|---|---|---|---|---|---|---|"]
        pixels = None
        for objective in a.objectives.split(","):
            for aug in a.augment.split(","):
                augment = aug == "on"
                try:
                    rep, cmd, seconds = run(ds, objective, augment, log, measure=not a.no_run)
                except subprocess.CalledProcessError as e:
                    print("failed: %s (see %s)" % (e, log), file=sys.stderr)
                    continue
                label = objective + (" + augmentation" if augment else "")
                pretty = " ".join(c if c != RUNNER else "go run ./runner" for c in cmd)
                if rep is None:
                    out.append("| %s | not run | | | | | `%s` |" % (label, pretty))
                    continue
                pixels = rep.get("raw_pixels")
                out.append(row(label, rep["model"], "%.0f" % seconds, pretty))
                print(out[-1], flush=True)
        if pixels:
            out.append(row("raw pixels", pixels, "–", "(computed by the same evaluation)"))
        out.append("")
    with open(os.path.join(ROOT, a.out), "w") as fh:
        fh.write("\n".join(out) + "\n")
    print("wrote", a.out)


if __name__ == "__main__":
    main()
