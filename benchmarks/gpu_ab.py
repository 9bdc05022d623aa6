"""A/B of the torch backend's central flow solve between two source trees, in one run.

``python benchmarks/gpu_ab.py --old DIR [--new DIR] [--device cuda] [--rounds 2]`` times
``gaflow.solve_flow(caps, backend="torch", device=...)`` (``mu=None``; the torch backend
follows the path) on gpu.py's cases (saved once, so both sides solve the same arrays), each
version in its own child process, the versions alternating case by case and round by round, so
that both see the same machine in the same state. ``DIR`` is a tree holding ``gaflow/`` (a
checkout's ``src``; for a commit: ``git archive COMMIT src | tar -x -C /tmp/old`` then
``--old /tmp/old/src``).

Each child warms up once and reports the median of ``--repeat`` timed solves (synchronised);
the table shows, per case, the least of the rounds' medians for each version and new / old.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
CASES = ["random L=6 t=32", "random L=12 t=128", "random L=12 t=512", "random L=12 t=1024",
         "batch 16 x L=12, t in 32..96", "MiniLM AGF t=512"]


def child(src: str, saved: str, device: str, repeat: int) -> None:
    """Solve the graphs saved in ``saved`` with the gaflow of ``src``; print JSON."""
    sys.path.insert(0, src)
    import numpy as np
    import torch

    import gaflow

    assert Path(gaflow.__file__).resolve().is_relative_to(Path(src).resolve()), gaflow.__file__
    with np.load(saved) as z:
        caps = [z[k] for k in sorted(z.files, key=int)]
    caps = caps[0] if len(caps) == 1 else caps

    def run():
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        sols = gaflow.solve_flow(caps, backend="torch", device=device)
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start, sols if isinstance(sols, list) else [sols]

    run()  # warm-up
    times = []
    for _ in range(repeat):
        took, sols = run()
        times.append(took)
    print(json.dumps({"s": statistics.median(times), "steps": max(s.iterations for s in sols),
                      "converged": all(s.converged for s in sols)}))


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        src, saved, device, repeat = sys.argv[2:6]
        child(src, saved, device, int(repeat))
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--old", required=True, help="source tree of the A side (holds gaflow/)")
    p.add_argument("--new", default=str(HERE.parent / "src"), help="... of the B side")
    p.add_argument("--device", default="cuda")
    p.add_argument("--real", default=None, help="folder with gpu.py's real_{128,512}.npy")
    p.add_argument("--case", action="append", dest="cases",
                   help=f"a case of gpu.py (repeatable; default: {'; '.join(CASES)})")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    sys.path.insert(0, str(HERE))
    import gpu
    import numpy as np

    names = args.cases or CASES
    every = gpu.cases(Path(args.real) if args.real else None, 1 << 30)
    unknown = [n for n in names if n not in every]
    if unknown:
        p.error(f"unknown case(s) {unknown}; gpu.py has {list(every)}"
                + ("" if args.real else " (the MiniLM cases need --real)"))
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for name in names:
            caps = every[name]
            files[name] = str(Path(tmp) / f"case{len(files)}.npz")
            np.savez(files[name], **{str(k): c for k, c in
                                     enumerate(caps if isinstance(caps, list) else [caps])})
        best = ab(names, files, args)
    print("\n| case | old (s) | new (s) | new / old | steps old / new | converged |"
          "\n|---|---:|---:|---:|---:|---|")
    for name in names:
        o, n = best[(name, "old")], best[(name, "new")]
        print(f"| {name} | {o['s']:.3f} | {n['s']:.3f} | {n['s'] / o['s']:.2f} | "
              f"{o['steps']} / {n['steps']} | {o['converged'] and n['converged']} |")


def ab(names: list[str], files: dict[str, str], args) -> dict[tuple[str, str], dict]:
    """Per (case, side), the child's report with the least median over the rounds."""
    best: dict[tuple[str, str], dict] = {}
    for r in range(args.rounds):
        for name in names:
            sides = [("old", args.old), ("new", args.new)]
            for side, src in sides if r % 2 == 0 else sides[::-1]:
                cmd = [sys.executable, __file__, "--child", src, files[name], args.device,
                       str(args.repeat)]
                out = subprocess.run(cmd, capture_output=True, text=True,
                                     env={**os.environ, "PYTHONWARNINGS": "ignore"})
                if out.returncode != 0:
                    sys.exit(f"{side} {name}: {out.stderr[-2000:]}")
                row = json.loads(out.stdout.strip().splitlines()[-1])
                print(f"round {r} {side:3s} {name}: {row}", flush=True)
                key = (name, side)
                if key not in best or row["s"] < best[key]["s"]:
                    best[key] = row
    return best


if __name__ == "__main__":
    main()
