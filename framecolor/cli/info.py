"""`framecolor info`: what is in a video, an image, a model file, or a model config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from framecolor.cli.common import guarded, print_rows


def info(
    path: Optional[Path] = typer.Argument(None, help="A video, image, folder of numbered photos, .fcm model file or training run folder."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    decoder: Optional[str] = typer.Option(None, help="Without PATH: the decoder of the model to describe (unet, seed; default unet)."),
    mode: Optional[str] = typer.Option(None, help="Without PATH: what the model predicts (lab, rgb; default lab)."),
    size: Optional[int] = typer.Option(None, help="Without PATH: the input size to count parameters at (default 224)."),
    width: Optional[float] = typer.Option(None, help="Without PATH: the backbone's width multiplier (default 1.0)."),
):
    """Describe a video or model file; without PATH, build a model config and count its parameters."""
    config_flags = {"--decoder": decoder, "--mode": mode, "--size": size, "--width": width}
    if path is None:
        from framecolor.models.colorizer import ModelConfig
        from framecolor.modelfile import config_facts, describe_config

        given = {name[2:]: value for name, value in config_flags.items() if value is not None}
        config = ModelConfig(**given)
        if as_json:  # values as values, as a model file's: the count a number, not "25,121,042"
            typer.echo(json.dumps(config_facts(config), indent=2))
            return
        rows = describe_config(config, config.size)
    elif any(value is not None for value in config_flags.values()):
        from framecolor.errors import InputError

        named = " ".join(name for name, value in config_flags.items() if value is not None)
        raise InputError(f"{named}: these build a model to describe when no PATH is given; "
                         f"{path} is described as it is (leave them out)")
    elif path.suffix.lower() == ".fcm" or (path / "run.json").is_file():  # a training run's folder: its model
        from framecolor.modelfile import describe_model, model_facts

        if as_json:  # values as values, not the table's words (a loss as a number, the options as an object)
            typer.echo(json.dumps(model_facts(path), indent=2))
            return
        rows = describe_model(path)
    else:
        from framecolor import video
        from framecolor.errors import InputError

        if video.is_image_path(path) and not path.is_dir():
            if as_json:  # values, as a video's and a model's are: not the table's "500 x 375"
                from framecolor.video.photos import photo_facts

                typer.echo(json.dumps(photo_facts(path), indent=2))
                return
            rows = video.describe_photo(path)
        else:
            if path.is_dir() and not video.list_images(path):  # photo_film's advice is apply's, not info's
                raise InputError(f"{path} is a folder without photos: info describes a video, a photo, a "
                                 "model file, or a folder of numbered photos (as the video they make)")
            # A folder of numbered photos is described as the video `apply scans/ film.mp4` makes of it.
            described = video.probe_photo_film(video.photo_film(path)) if path.is_dir() else video.probe(path)
            if as_json:
                typer.echo(json.dumps(described.to_dict(), indent=2))
                return
            rows = video.describe(described)
    if as_json:
        typer.echo(json.dumps(dict(rows), indent=2))
    else:
        print_rows(rows)


def register(app: typer.Typer) -> None:
    app.command()(guarded(info))
