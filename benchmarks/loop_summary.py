"""One table of every decision-loop run under benchmarks/results/ (the files benchmarks/loop.py writes).

Each run is one exploration setting on one seeded stream; this puts them side by side: per dataset
the served accuracy on the test window with its 95% paired-bootstrap interval against always-BoTr,
the final champion's greedy policy (what was learned), the offline model trained on the full
training logs (the reward model's own ceiling on those questions), Vowpal Wabbit on the same
stream, and how often the loop explored. The split says which questions are tested: *grouped*,
texts never seen in training; *paper*, the published split, whose SVAMP and MAWPS test texts all
recur among the training questions.

    .venv/bin/python benchmarks/loop_summary.py [--glob 'loop*.json'] [--out loop_summary.md]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
GREEDY = "loop's final champion, greedy (no exploration)"
VW = "Vowpal Wabbit cb_explore_adf"
OFFLINE = "offline model (full logs)"


def setting(meta: dict) -> str:
    mode = meta["exploration"]
    knob = {"epsilon": f" ε={meta['epsilon']}", "softmax": f" T={meta['temperature']}"}.get(mode, "")
    # runs before --protocol existed measured the paper split
    return f"{meta.get('protocol', 'paper')} split, {mode}{knob}, cold {meta['cold']}, seed {meta['seed']}"


def gate_rule(data: dict) -> str:
    """The gate a run was judged by: recorded in its meta, else read off its events (``provisional`` is
    recorded since provisional champions exist)."""
    if "gate" in data["meta"]:
        return data["meta"]["gate"]
    events = [e for r in data["reports"] for e in r["events"]]
    rule = "provisional champions" if any("provisional" in e for e in events) else "lower bound for every champion"
    return rule + (", fresh decisions only" if data["meta"].get("gate_decisions") == "fresh" else "")


def cell(method: dict | None) -> str:
    if method is None:
        return "-"
    ci = method.get("test_ci95_vs_botr")
    return f"{method['test_window']:.3f}" + (f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else "")


def summarise(paths: list[Path]) -> str:
    lines = ["# The decision loop: every run side by side", "",
             "Test window accuracy (the split: *grouped*, texts never seen in training; *paper*, the published "
             "split, whose SVAMP and MAWPS test texts all recur in training); in brackets the 95% paired-bootstrap "
             "interval of the difference from always-BoTr on the same questions. *served*: what the loop served, "
             "exploration included; *greedy*: the final champion's safe policy without exploration; *offline*: the "
             "model trained on the full training logs (every prompt on every training question). Written by "
             "`benchmarks/loop_summary.py` from the runs of `benchmarks/loop.py` named in the first column.", "",
             "| run | setting | gate | dataset | BoTr | served | greedy | offline | Vowpal Wabbit | explored |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for path in paths:
        data = json.loads(path.read_text())
        meta, gate = data["meta"], gate_rule(data)
        for r in data["reports"]:
            m = r["methods"]
            lines.append(f"| {path.stem} | {setting(meta)} | {gate} | {r['dataset']} | "
                         f"{m['always BoTr']['test_window']:.3f} | {cell(m['loop (served)'])} | "
                         f"{cell(m.get(GREEDY))} | {cell(m.get(OFFLINE))} | {cell(m.get(VW))} | "
                         f"{r['explored_share']:.0%} |")
            knobs = setting(meta).rsplit(", seed", 1)[0]
            groups.setdefault((knobs, gate, r["dataset"]), []).append(m)
    return "\n".join(lines + [""] + by_setting(groups)) + "\n"


def by_setting(groups: dict[tuple[str, str, str], list[dict]]) -> list[str]:
    """Per setting and dataset, over its seeds: the served accuracy minus BoTr on the test window."""
    lines = ["## Per setting, over seeds", "",
             "Served minus BoTr on the test window: mean and range over the runs; *below*: runs whose interval "
             "lies below zero; *≥ +0.02*: runs whose difference reaches the issue's target.", "",
             "| setting | gate | dataset | runs | mean | range | below | ≥ +0.02 |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for (knobs, gate, dataset), runs in sorted(groups.items()):
        diff = [m["loop (served)"]["test_window"] - m["always BoTr"]["test_window"] for m in runs]
        below = sum(m["loop (served)"]["test_ci95_vs_botr"][1] < 0 for m in runs)
        lines.append(f"| {knobs} | {gate} | {dataset} | {len(runs)} | {sum(diff) / len(diff):+.3f} | "
                     f"{min(diff):+.3f} .. {max(diff):+.3f} | {below} | {sum(d >= 0.02 for d in diff)} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--glob", default="loop*.json")
    ap.add_argument("--out", default="loop_summary.md")
    args = ap.parse_args()
    paths = sorted(p for p in RESULTS.glob(args.glob) if "meta" in json.loads(p.read_text()))
    text = summarise(paths)
    (RESULTS / args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
