"""phototag models: list, install, export, remove and verify backbones and recognizers."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from . import options as o
from .console import ExitCode, Output, escape, guarded, safe_path

if TYPE_CHECKING:
    from ..models.catalog import Catalog

app = typer.Typer(
    help="List, install, export, remove and verify models.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

To = Annotated[
    Path | None,
    typer.Option(
        "--to", help="Weights folder to install into [default: the user's weights folder]."
    ),
]


def _kind_of_recognizer(catalog: Catalog, name: str) -> tuple[str, str]:
    """(runs on, kind) for the listing, without loading any model."""
    zero_shot = catalog.zero_shot_backbone()
    if name in catalog.vocabularies and zero_shot:
        return zero_shot, "zero-shot"
    entry = catalog.recognizers.get(name)
    if entry is None:
        return "(needs a zero-shot backbone)", "zero-shot"
    from ..models.manifest import read_toml

    return entry.backbone, str(read_toml(entry.path).get("kind", ""))


def _list_available(out: Output, json_out: bool) -> None:
    """The ready ONNX models of the Immich family on the Hugging Face Hub."""
    from rich.table import Table

    from ..models.catalog import Catalog
    from ..models.hub import hub_models

    installed = Catalog.discover().backbones
    rows = [
        {"name": m.name, "family": m.family, "download_bytes": m.download_bytes,
         "embedding_dim": m.embedding_dim, "image_size": m.image_size, "languages": m.languages,
         "license": m.license, "repository": m.repo, "installed": m.name in installed,
         "install": m.command, "description": m.description}
        for m in hub_models().values()
    ]  # fmt: skip
    if json_out:
        for r in rows:
            out.json(r)
        return
    t = Table(title="zero-shot models on the Hugging Face Hub (Immich's ONNX exports)",
              title_justify="left")  # fmt: skip
    t.add_column("name", no_wrap=True)
    for col in ("family", "download", "dim", "languages", "licence", "installed"):
        t.add_column(col, no_wrap=True, overflow="ellipsis")
    for r in rows:
        t.add_row(f"[tag]{escape(str(r['name']))}[/]", str(r["family"]),
                  f"~{int(str(r['download_bytes'])) / 1e9:.1f} GB", str(r["embedding_dim"]),
                  escape(str(r["languages"])), escape(str(r["license"])),
                  "yes" if r["installed"] else "")  # fmt: skip
    out.result(t)
    out.info("Install one with 'phototag models install NAME'. Any other model of "
             "https://huggingface.co/immich-app installs the same way; "
             "CC-BY-NC models are for non-commercial use only.")  # fmt: skip


@app.command("list")
def list_command(
    available: Annotated[
        bool,
        typer.Option(
            "--available", help="List the ready ONNX models on the Hugging Face Hub instead."
        ),
    ] = False,
    json_out: o.Json = False,
) -> None:
    """Show installed backbones and recognizers, and the backbones phototag knows how to get."""
    from rich.table import Table

    from ..config import user_weights_dir
    from ..models.catalog import Catalog
    from ..models.install import known_backbones
    from ..models.zeroshot import load_vocabulary

    out = Output(json_mode=json_out)
    with guarded(out):
        if available:
            _list_available(out, json_out)
            return
        catalog = Catalog.discover()
        known = known_backbones()
        user = user_weights_dir().resolve()
        backbones = []
        for name in sorted(catalog.backbones):
            folder = catalog.backbones[name]
            m = catalog.backbone(name)
            size = sum(
                (folder / f.name).stat().st_size for f in m.files if (folder / f.name).exists()
            )
            backbones.append({
                "name": name, "kind": m.kind, "installed": True, "folder": str(folder),
                "removable": folder.resolve().parent == user, "bytes": size,
                "description": m.description, "source": m.source.get("weights_from", ""),
            })  # fmt: skip
        for name, k in known.items():
            if name not in catalog.backbones:
                backbones.append({
                    "name": name, "kind": "zero-shot", "installed": False,
                    "description": k.description,
                    "get": f"phototag models install {name}",
                    "source": k.url or k.downloads,
                })  # fmt: skip
        recognizers = []
        for name in catalog.names():
            runs_on, kind = _kind_of_recognizer(catalog, name)
            if kind == "zero-shot":
                vocab = load_vocabulary(catalog.vocabularies[name])
                description, tags = vocab.description, len(vocab.members())
            else:
                entry = catalog.recognizers[name]
                description, tags = entry.description, len(catalog.recognizer(name).paths)
            recognizers.append(
                {"name": name, "backbone": runs_on, "kind": kind, "tags": tags,
                 "description": description}
            )  # fmt: skip
        if json_out:
            out.json({"backbones": backbones, "recognizers": recognizers})
            return
        bt = Table(title="backbones", title_justify="left")
        for col in ("name", "kind", "size", "status", "description"):
            bt.add_column(col)
        for b in backbones:
            status = (
                ("installed (user)" if b["removable"] else "installed")
                if b["installed"]
                else f"[muted]not installed: {escape(str(b['get']))}[/]"
            )
            mb = f"{float(str(b['bytes'])) / 1e6:.0f} MB" if b["installed"] else ""
            bt.add_row(f"[tag]{escape(str(b['name']))}[/]", str(b["kind"]), mb, status,
                       escape(str(b["description"])))  # fmt: skip
        out.result(bt)
        rt = Table(title="recognizers (-m NAME)", title_justify="left")
        for col in ("name", "runs on", "kind", "tags", "description"):
            rt.add_column(col)
        for r in recognizers:
            rt.add_row(f"[tag]{escape(str(r['name']))}[/]", escape(str(r["backbone"])),
                       str(r["kind"]), str(r["tags"] or ""), escape(str(r["description"])))  # fmt: skip
        out.result(rt)
        if not catalog.zero_shot_backbone():
            out.info(
                "No zero-shot backbone is installed: scene, food and flower use the ImageNet "
                "classes, and mushroom, fashion-* and 'phototag search' are unavailable. "
                "Get one with 'phototag models install ViT-B-32__openai' (or see "
                "'phototag models list --available')."
            )


def _download_bar(out: Output):  # type: ignore[no-untyped-def]
    """A Rich progress bar for downloads (nothing when output is not a terminal)."""
    if not out.interactive:
        return None, None
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    bar = Progress(
        "[progress.description]{task.description}", BarColumn(), DownloadColumn(),
        TransferSpeedColumn(), TimeRemainingColumn(), console=out.err, transient=True,
    )  # fmt: skip
    task = bar.add_task("downloading", total=None)

    def update(done: int, total: int | None) -> None:
        bar.update(task, completed=done, total=total)

    return bar, update


@app.command("install")
def install_command(
    source: Annotated[
        str,
        typer.Argument(
            help="A known name (see 'models list'), an https URL of an archive, a local "
            "archive (.tar.gz, .zip) or a backbone folder.",
            show_default=False,
        ),
    ],
    sha256: Annotated[
        str | None, typer.Option(help="The archive's expected sha256 (downloads, archives).")
    ] = None,
    revision: Annotated[
        str, typer.Option(help="Hub models: the branch, tag or commit to install.")
    ] = "main",
    to: To = None,
) -> None:
    """Install a backbone: a ready ONNX model from the Hugging Face Hub in Immich's layout
    (NAME from 'models list --available', or immich-app/NAME), or a folder or archive. It is
    checked file by file, then moved into place at once (a failed or killed install leaves
    the previous state). Hub downloads honour HF_ENDPOINT, HF_HOME and HF_HUB_OFFLINE."""
    import contextlib

    from ..models.install import install, known_backbones

    out = Output()
    with guarded(out):
        known = known_backbones()
        looks_like_path = "/" in source or source.endswith((".gz", ".tgz", ".tar", ".zip"))
        if _from_hub(source, known):
            _install_from_hub(out, source, revision, to)
            return
        if source in known and not looks_like_path and not Path(source).exists():
            k = known[source]
            if k.url:
                source, sha256 = k.url, sha256 or k.sha256
            else:
                _export_and_install(out, k.arch, k.pretrained, None, k.name, [], to)
                return
        bar, update = _download_bar(out) if "://" in source else (None, None)
        with bar or contextlib.nullcontext():
            done = install(source, to, sha256=sha256, progress=update)
        verb = "replaced" if done.replaced else "installed"
        out.info(
            f"{verb} [tag]{escape(done.name)}[/] in [filepath]{escape(safe_path(done.folder))}[/]"
        )


def _from_hub(source: str, known: Mapping[str, object]) -> bool:
    """Whether ``source`` names a hub model (listed, ``NAME__TAG`` or ``owner/name``) rather
    than a known export, a URL, an archive or a folder on disk."""
    from ..models.hub import hub_models

    if "://" in source or source in known or Path(source).exists():
        return False
    if source.endswith((".gz", ".tgz", ".tar", ".zip")) or source.startswith((".", "/", "~")):
        return False
    return source in hub_models() or "__" in source or source.count("/") == 1


def _install_from_hub(out: Output, name: str, revision: str, to: Path | None) -> None:
    from ..models.hub import install_from_hub, repo_of

    def starting(total: int) -> None:
        out.info(f"downloading {escape(repo_of(name))} ({total / 1e6:,.0f} MB, checked against "
                 "the hub's sha256; an interrupted download resumes)")  # fmt: skip

    if not out.interactive:  # huggingface_hub's own bars are for terminals only
        from huggingface_hub.utils.tqdm import disable_progress_bars

        disable_progress_bars()
    done = install_from_hub(name, to, revision=revision, on_start=starting)
    verb = "replaced" if done.replaced else "installed"
    out.info(f"{verb} [tag]{escape(done.name)}[/] in [filepath]{escape(safe_path(done.folder))}[/]")


def _export_and_install(
    out: Output,
    arch: str,
    pretrained: str | None,
    config: Path | None,
    name: str | None,
    images: list[Path],
    to: Path | None,
) -> None:
    import tempfile

    from ..config import user_weights_dir
    from ..models.export_clip import export_clip
    from ..models.install import install_folder

    dest = to or user_weights_dir()
    dest.mkdir(parents=True, exist_ok=True)
    if pretrained:
        out.info(f"OpenCLIP downloads the {escape(arch)} {escape(pretrained)} weights if they "
                 "are not in its cache (Hugging Face Hub); this needs the internet once")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix=".export-", dir=dest) as tmp:
        report = export_clip(arch, pretrained, Path(tmp), config=config, name=name, images=images,
                             progress=lambda m: out.info(escape(m)))  # fmt: skip
        out.info(f"ONNX matches PyTorch: image embeddings within {report.image_max_diff:.1e}, "
                 f"text within {report.text_max_diff:.1e} ({report.checked_images} images, "
                 f"{report.checked_texts} texts)")  # fmt: skip
        done = install_folder(report.folder, dest)
    verb = "replaced" if done.replaced else "installed"
    out.info(f"{verb} [tag]{escape(done.name)}[/] in [filepath]{escape(safe_path(done.folder))}[/]")


@app.command("export")
def export_command(
    family: Annotated[str, typer.Argument(help="The model family: clip.", show_default=False)],
    arch: Annotated[str, typer.Option(help="OpenCLIP architecture, e.g. ViT-B-32.")] = "ViT-B-32",
    pretrained: Annotated[
        str,
        typer.Option(
            help="OpenCLIP weights tag, e.g. openai or laion2b_s34b_b79k; 'none' for random "
            "weights (testing only: they recognize nothing)."
        ),
    ] = "openai",
    config: Annotated[
        Path | None,
        typer.Option(help="An OpenCLIP model config (JSON) for an architecture it lacks."),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Backbone name [default: clip-ARCH-PRETRAINED].")
    ] = None,
    image: Annotated[
        list[Path] | None,
        typer.Option("--image", help="Also check ONNX against PyTorch on this photo (repeatable)."),
    ] = None,
    to: To = None,
) -> None:
    """Build a zero-shot backbone from OpenCLIP on this machine and install it.

    Needs: pip install 'phototag[clip]' (PyTorch and OpenCLIP; only for this command). The
    ONNX encoders are checked against PyTorch before anything is installed.
    """
    out = Output()
    with guarded(out):
        if family != "clip":
            from ..errors import ConfigError

            raise ConfigError(f"unknown model family {family!r}: only 'clip' can be exported")
        weights = None if pretrained.lower() in ("none", "random", "") else pretrained
        _export_and_install(out, arch, weights, config, name, list(image or []), to)


@app.command("remove")
def remove_command(
    name: Annotated[str, typer.Argument(help="The backbone to remove.", show_default=False)],
    to: To = None,
) -> None:
    """Remove an installed backbone (not one shipped with phototag)."""
    from ..errors import ConfigError
    from ..models.catalog import Catalog
    from ..models.install import remove

    out = Output()
    with guarded(out):
        catalog = Catalog.discover()
        if name not in catalog.backbones and name in catalog.names():
            raise ConfigError(
                f"{name!r} is a recognizer, not a backbone: 'phototag recognizers remove "
                f"{name}' removes one you trained"
            )
        folder = remove(name, to)
        out.info(
            f"removed [tag]{escape(name)}[/] from [filepath]{escape(safe_path(folder.parent))}[/]"
        )


@app.command("verify")
def verify_command(
    names: Annotated[
        list[str] | None, typer.Argument(help="Backbones to check [default: all].")
    ] = None,
    json_out: o.Json = False,
) -> None:
    """Check every file of the backbones against the sha256 in their manifests."""
    from ..errors import ModelError
    from ..models.catalog import Catalog
    from ..models.manifest import verify_files

    out = Output(json_mode=json_out)
    bad = 0
    with guarded(out):
        catalog = Catalog.discover()
        for name in names or sorted(catalog.backbones):
            try:
                verify_files(catalog.backbone(name))
                problem = None
            except ModelError as e:
                problem = str(e)
                bad += 1
            if json_out:
                out.json({"backbone": name, "ok": problem is None, "problem": problem})
            elif problem:
                out.error(f"[tag]{escape(name)}[/]: {escape(problem)}")
            else:
                out.result(f"[tag]{escape(name)}[/]: ok")
    raise typer.Exit(ExitCode.ERROR if bad else ExitCode.OK)


@app.command("calibrate")
def calibrate_command(
    name: Annotated[str, typer.Argument(help="The vocabulary, e.g. scene.", show_default=False)],
    folder: Annotated[
        Path,
        typer.Argument(
            help="Labelled photos: FOLDER/<tag>/*.jpg, one sub-folder per tag of the vocabulary.",
            show_default=False,
        ),
    ],
    dry_run: Annotated[bool, typer.Option(help="Measure only; save nothing.")] = False,
    to: To = None,
    json_out: o.Json = False,
) -> None:
    """Fit a zero-shot vocabulary's temperature on labelled photos (temperature scaling), so
    its scores are honest probabilities and --threshold means the same as for the others."""
    from ..training.calibrate import calibrate

    out = Output(json_mode=json_out)
    with guarded(out):
        r = calibrate(name, folder, out_dir=to, save=not dry_run)
        for s in r.skipped:
            out.warning(escape(s))
        if json_out:
            out.json(r.as_json())
            return
        out.result(
            f"[tag]{escape(r.name)}[/] on {escape(r.backbone)}, [num]{r.photos}[/] photos: "
            f"temperature {r.temperature_before:.1f} -> [num]{r.temperature:.1f}[/]; "
            f"log-loss {r.nll_before:.3f} -> {r.nll_after:.3f}; calibration error "
            f"{r.ece_before:.3f} -> {r.ece_after:.3f}; top-1 {r.accuracy:.0%}"
        )
        if r.saved:
            out.info(f"saved [filepath]{escape(safe_path(r.saved))}[/]; 'phototag retag -m "
                     f"{escape(r.name)}' rescores your photos with it, no decoding needed")  # fmt: skip
