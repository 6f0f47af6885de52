"""``tailor experiments --plot``: each arm's CTR lift over the control, day by day, with its always-valid interval."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .experiment_report import ExperimentReport


def plot_lifts(reports: Sequence[ExperimentReport], path: Path) -> None:
    """One panel per experiment: the cumulative lift per day and arm, its interval shaded, zero marked."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no screen
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(max(1, len(reports)), 1, figsize=(8, 3.2 * max(1, len(reports))), squeeze=False)
    for axis, report in zip(axes[:, 0], reports, strict=False):
        for arm in report.experiment.arms[1:]:
            points = [p for p in report.over_time if p.arm == arm and p.expected is not None]
            days = [p.day for p in points]
            axis.plot(
                days, [p.expected * 100 for p in points], marker="o", label=f"{arm} vs {report.experiment.arms[0]}"
            )
            axis.fill_between(days, [p.low * 100 for p in points], [p.high * 100 for p in points], alpha=0.25)
        axis.axhline(0, color="grey", linewidth=1)
        axis.set_title(f"{report.experiment.name}: CTR lift, always-valid 95% interval (phase {report.phase})")
        axis.set_ylabel("lift (%)")
        axis.legend(loc="best")
        axis.tick_params(axis="x", rotation=30)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
