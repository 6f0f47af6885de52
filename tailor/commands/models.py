"""``tailor models``: a running server's models: drift from training, live AUC and calibration."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .exit_codes import EXIT_OK, EXIT_PROBLEMS
from .kpis import DEFAULT_URL
from .parser import Parser
from .remote import api_key, server_json


def add_parser(subparsers: argparse._SubParsersAction[Parser]) -> Parser:
    parser = subparsers.add_parser(
        "models",
        help="show a server's models: score drift from training (PSI, JS), live AUC and calibration",
        description="Show each model of the version a running server serves: how far its live scores have "
        "drifted from the training scores (PSI and Jensen-Shannon distance; band ok < 0.1 <= warn < 0.25 <= "
        "alert), and, from feedback, its live AUC and calibration (predicted score against observed CTR by "
        "decile of the training scores). See docs/models.md.",
        epilog="example:\n  tailor models --url http://127.0.0.1:8080 --plot calibration.png",
    )
    parser.add_argument("--url", default=DEFAULT_URL, help="the server's base URL (default: %(default)s)")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="(default: %(default)s)")
    parser.add_argument("--plot", type=Path, metavar="FILE", help="draw each model's calibration to FILE (PNG)")
    parser.add_argument("--api-key", metavar="KEY", help="the server's API key (default: $TAILOR_API_KEY)")
    return parser


def run(args: argparse.Namespace) -> int:
    url = args.url.rstrip("/") + "/v1/models"
    data = server_json(url, None, api_key(args))
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        if data is not None:
            print(f"tailor: {url}: the answer is not a models report", file=sys.stderr)
        return EXIT_PROBLEMS
    if args.format == "json":
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        sys.stdout.write(text(data))
    if args.plot is not None:
        plot(data["models"], args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    return EXIT_OK


def _number(value: float | None, form: str = ".4f") -> str:
    return "-" if value is None else format(value, form)


def text(data: dict[str, Any]) -> str:
    if not data["models"]:
        return f"ruleset {data['ruleset']} {data['version']} has no models\n"
    lines = []
    for model in data["models"]:
        lines += [
            f"{model['name']} ({model['file']}, version {model['version']}, trained {model['trained_at'] or '-'})",
            f"  drift: {model['band']}  PSI {_number(model['psi'])}  JS {_number(model['js'])}  "
            f"({model['scored']:,} live scores)",
            f"  live AUC {_number(model['auc'])} (training {_number(model['training_auc'])}), "
            f"calibration error {_number(model['calibration_error'])}, "
            f"{model['impressions']:,} impressions, {model['clicks']:,} clicks",
        ]
        shown = [row for row in model["calibration"] if row["impressions"]]
        if shown:
            lines.append("  decile  scores         impressions  clicks  predicted  observed")
            for row in shown:
                low, high = _number(row["low"], ".3f"), _number(row["high"], ".3f")
                lines.append(
                    f"  {row['decile']:>6}  {low:>5}-{high:<5}  {row['impressions']:>11,}  {row['clicks']:>6,}  "
                    f"{_number(row['predicted']):>9}  {_number(row['observed']):>8}"
                )
    return "\n".join(lines) + "\n"


def plot(models: list[dict[str, Any]], path: Path) -> None:
    """Predicted against observed CTR per decile, one panel per model; the diagonal is perfect calibration."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no screen
    import matplotlib.pyplot as plt

    panels = max(len(models), 1)
    figure, axes = plt.subplots(1, panels, figsize=(4.5 * panels, 4.5), squeeze=False)
    for axis, model in zip(axes[0], models, strict=False):
        rows = [row for row in model["calibration"] if row["impressions"]]
        axis.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect")
        if rows:
            sizes = [20 + 180 * row["impressions"] / max(r["impressions"] for r in rows) for row in rows]
            axis.scatter([r["predicted"] for r in rows], [r["observed"] for r in rows], s=sizes, label="deciles")
            axis.plot([r["predicted"] for r in rows], [r["observed"] for r in rows], linewidth=1)
        auc = _number(model["auc"], ".3f")
        axis.set_title(f"{model['name']}: AUC {auc}, drift {model['band']} (PSI {_number(model['psi'], '.3f')})")
        axis.set_xlabel("predicted (mean score)")
        axis.set_ylabel("observed CTR")
        axis.set_xlim(0, 1)
        axis.set_ylim(0, 1)
        axis.legend(loc="upper left")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
