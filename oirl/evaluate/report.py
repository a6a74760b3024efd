"""Present evaluation reports: a plain-text table and an accuracy-vs-K plot."""

from __future__ import annotations

from pathlib import Path

LABELS = {
    "random": "random prompt",
    "botr_train": "BoTr (best on training logs)",
    "botr_test": "BoTr on test logs (optimistic)",
    "llm_confidence": "LLM self-confidence",
    "prompt_oirl": "Prompt-OIRL (default: safe fallback)",
    "prompt_oirl_argmax": "Prompt-OIRL (plain best-of-N)",
    "oracle": "oracle",
}


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def render_headroom(h: dict | None) -> str | None:
    """One line on the repeat ceiling (``oirl.evaluate.headroom``), or None when there is none."""
    if not h:
        return None
    if not h.get("n_texts"):
        return f"repeat ceiling: {h.get('note')}"
    lo, hi = h["ci95"]
    return (f"repeat ceiling: picking per query from its other tries gains {h['gain']:+.3f} [{lo:+.3f}, {hi:+.3f}] "
            f"over the default prompt ({h['n_held_out_tries']} held-out tries of {h['n_texts']} repeated queries); "
            "the one-sample oracle counts lucky tries and is far above what any selector can reach")


def render_policies(policies: dict | None) -> str | None:
    """Side by side: each policy's estimates on the same held-out decisions, and its difference to BoTr."""
    if not policies:
        return None

    def cell(e: dict | None) -> str:
        if not e:
            return f"{'-':>22s}"
        ci = e.get("ci95") or (e["value"], e["value"])
        return f"{e['value']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]".rjust(22)

    lines = ["policies on the same held-out logged decisions (95% intervals):",
             f"{'policy':11s}" + "".join(f"{n.upper():>22s}" for n in ("ips", "snips", "dm", "dr"))
             + f"{'ESS':>7s}  difference to BoTr"]
    for name, r in policies.items():
        if "estimates" not in r:
            lines.append(f"{name:11s} unavailable: {r.get('unavailable')}")
            continue
        e = r["estimates"]
        vs = r.get("vs_botr")
        diff = (f"  {vs['estimator'].upper()} {vs['difference']:+.3f} [{vs['ci95'][0]:+.3f}, {vs['ci95'][1]:+.3f}]"
                if vs else "")
        lines.append(f"{name:11s}" + "".join(cell(e.get(n)) for n in ("ips", "snips", "dm", "dr"))
                     + f"{r.get('ess', 0):7.0f}{diff}")
    return "\n".join(lines)


def render_table(report: dict) -> str:
    """Fixed-width table of one report: accuracy, interval vs BoTr, PGR per method; on partial logs with
    propensities the policies side by side; and the repeat ceiling."""
    extra = [x for x in (render_policies(report.get("policies")), render_headroom(report.get("repeat_headroom")))
             if x]
    return "\n".join([_render_table(report), *extra])


def _render_table(report: dict) -> str:
    if report.get("information") == "partial":
        lines = [f"{report['dataset']} | protocol {report['protocol']} | partial logs", report["unavailable"]]
        loss = report.get("held_out_log_loss")
        if loss:
            lines.append(f"held-out log loss over {loss['n_observations']} observations ({loss['n_queries']} "
                         f"queries): reward model {loss['reward_model']:.4f}, per-prompt base rate "
                         f"{loss['prompt_base_rate']:.4f}")
        return "\n".join(lines)
    head = (f"{report['dataset']} | protocol {report['protocol']} | K={report['k']}"
            f"{' + 10 held-out candidates' if report.get('held_out') else ''}"
            f" | {report['n_test']} test queries ({report.get('n_test_questions', '?')} distinct questions)"
            + (f" | averaged over {report['n_subsets']} prompt subsets" if report.get("n_subsets", 1) > 1 else ""))
    lines = [head, f"{'method':40s} {'accuracy':>8s}  {'95% CI vs BoTr':>17s}  {'PGR':>6s}"]
    for name, m in report["methods"].items():
        ci = m.get("ci95_vs_botr")
        ci_s = f"[{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else ""
        lines.append(f"{LABELS.get(name, name):40s} {_fmt(m['accuracy']):>8s}  {ci_s:>17s}  {_fmt(m.get('pgr')):>6s}")
    fb = report["methods"].get("prompt_oirl", {}).get("fallback_rate")
    if fb is not None:
        lines.append(f"(default policy fell back to BoTr on {fb:.0%} of test queries)")
    return "\n".join(lines)


def plot_accuracy_vs_k(curve: list[dict], path: Path, title: str | None = None) -> Path:
    """Accuracy of each method against K (number of training prompts), one line per method.

    ``curve``: reports for increasing K (as returned by ``evaluate``). With a single report
    (e.g. the held-out setting) a bar chart is drawn instead.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = {"oracle": ("k", ":"), "prompt_oirl": ("tab:red", "-"), "prompt_oirl_argmax": ("tab:orange", "--"),
              "botr_train": ("tab:blue", "-"), "botr_test": ("tab:cyan", "--"), "llm_confidence": ("tab:green", "-."),
              "random": ("tab:gray", "-")}
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    first = curve[0]
    title = title or f"{first['dataset']} — {first['protocol']} protocol ({first['n_test']} test queries)"
    if len(curve) == 1:
        names = [n for n, m in first["methods"].items() if m["accuracy"] is not None]
        accs = [first["methods"][n]["accuracy"] for n in names]
        ax.barh([LABELS.get(n, n) for n in names], accs, color=[styles.get(n, ("tab:purple",))[0] for n in names])
        for y, a in enumerate(accs):
            ax.text(a, y, f" {a:.3f}", va="center", fontsize=8)
        ax.set_xlabel("test accuracy")
        ax.invert_yaxis()
    else:
        ks = [r["k"] for r in curve]
        for name, (color, ls) in styles.items():
            ys = [r["methods"].get(name, {}).get("accuracy") for r in curve]
            if all(y is None for y in ys):
                continue
            ax.plot(ks, [float("nan") if y is None else y for y in ys], color=color, linestyle=ls, marker="o",
                    markersize=4, label=LABELS[name], linewidth=2.2 if name == "prompt_oirl" else 1.4)
        ax.set_xlabel("K = number of training prompts (candidates)")
        ax.set_ylabel("test accuracy")
        ax.set_xticks(ks)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def render_estimates(report: dict) -> str:
    """An off-policy report as text: each estimate with its interval, and what could not be estimated."""
    lines = [f"policy {report['policy']} on {report['n']:,} held-out logged decisions "
             f"({report.get('n_queries', 0):,} queries) of task {report.get('task')}"
             + (f", prompt {report['prompt'][:60]!r}" if report.get("prompt") else "")]
    if "logged_reward" in report:
        lines.append(f"  logging policy's observed mean reward: {report['logged_reward']:.4f}; "
                     f"effective sample size {report.get('ess', 0):,.0f}")
    for name, e in report.get("estimates", {}).items():
        ci = e.get("ci95")
        interval = f"  95% CI [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else ""
        lines.append(f"  {name.upper():<6} {e['value']:.4f}{interval}")
    for name, why in report.get("unavailable", {}).items():
        lines.append(f"  {name.upper():<6} unavailable: {why}")
    return "\n".join(lines)
