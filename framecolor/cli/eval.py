"""`framecolor eval`: score colorization of color clips against their own colors."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from framecolor.cli.common import guarded, print_rows


def evaluate(
    clips: List[Path] = typer.Argument(..., help="Color clips: each is made gray, colorized and compared."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Model file (.fcm) or training run folder; default: the shipped one."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Also write every figure to this JSON file (replaced if it exists)."),
    strips: Optional[Path] = typer.Option(
        None, "--strips", help="Write gray | output | truth PNG strips here (STEM.png; with the folder if stems clash; "
        "strips of those names replaced)."
    ),
    train_split: Optional[float] = typer.Option(
        None, "--train-split", help="Score only the part of each clip after this fraction (0..1)."
    ),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", help="Score at most this many frames per clip."),
    render_size: Optional[int] = typer.Option(None, "--render-size", help="Short side the model sees."),
    no_smoothing: bool = typer.Option(False, "--no-smoothing", help="Colorize every frame on its own."),
    temperature: Optional[float] = typer.Option(None, "--temperature", help="Bins-head readout temperature."),
    saturation: Optional[float] = typer.Option(
        None, "--saturation", help="Scale the predicted color (default: the model's calibrated gain, else 1.0)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
):
    """Colorize gray versions of color clips and report PSNR, SSIM, colorfulness, CDC and luma error."""
    import os
    from dataclasses import replace

    from framecolor import allocator
    from framecolor import apply as pipeline
    from framecolor import evaluate as ev
    from framecolor import video
    from framecolor.errors import OutputError

    allocator.reuse_freed_memory()  # runs apply's pipeline: the same gain (framecolor.allocator)
    if json_path is not None:
        video.check_output_path(json_path, inputs=clips, overwrite=True)
        # Else the strips' folder took the name, and the report failed to take it after all the work.
        if strips is not None and os.path.realpath(json_path) == os.path.realpath(strips):
            raise OutputError(f"--json {json_path} is the --strips folder: give the report a file name of its own")
    config = ev.EvalConfig(train_split=train_split, max_frames=max_frames).validate()
    changes = {"render_size": render_size, "smoothing": 0.0 if no_smoothing else None, "temperature": temperature,
               "saturation": saturation}
    apply_config = replace(pipeline.ApplyConfig(), **{k: v for k, v in changes.items() if v is not None}).validate()
    colorizer = pipeline.Colorizer(pipeline.load(model, temperature=temperature), apply_config)
    report = ev.evaluate(colorizer, clips, config, strips_dir=strips, progress=not quiet)
    # Every setting that changes the scores, as used (the model's own where not given), so
    # that two reports can be compared: the model and saturation alone left them unexplained.
    report["model"] = str(model) if model else "default"
    report["saturation"] = colorizer.saturation
    report["render_size"] = colorizer.render_size
    report["smoothing"] = colorizer.config.smoothing  # 0: off (--no-smoothing)
    # Only a bins head reads its colors out at a temperature; for another it means nothing.
    report["temperature"] = colorizer.config.temperature if colorizer.model_config.head == "bins" else None
    report["max_frames"] = config.max_frames
    report["train_split"] = config.train_split
    if json_path is not None:  # first: a reader that stops early (| head) must not cost the report
        ev.write_json(json_path, report)
    print_rows(ev.report_rows(report))


def register(app: typer.Typer) -> None:
    app.command("eval")(guarded(evaluate))
