"""phototag people: list, name, merge, split, ignore and forget the people faces were grouped into."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from . import options as o
from .console import ExitCode, Output, escape, guarded, index_lock, safe_path

if TYPE_CHECKING:
    from ..index.faces import Person
    from ..index.store import Index

app = typer.Typer(
    help="People: the faces scans found, grouped by who they look like; name them once.",
    invoke_without_command=True,
    no_args_is_help=False,
)

PersonRef = Annotated[
    str, typer.Argument(help="A person's number (from 'phototag people') or name.")
]


def _person_json(p: Person, idx: Index) -> dict[str, object]:
    from ..index import faces as db

    best = db.path_of_face(idx, p.best_face) if p.best_face is not None else None
    return {"id": p.id, "name": p.name, "ignored": p.ignored, "faces": p.faces, "photos": p.photos,
            "representative_face": p.best_face, "representative_photo": str(best) if best else None}  # fmt: skip


def _print_person(out: Output, p: Person, idx: Index) -> None:
    from ..index import faces as db

    best = db.path_of_face(idx, p.best_face) if p.best_face is not None else None
    label = f"[tag]{escape(p.name)}[/]" if p.name else "[muted](unnamed)[/]"
    flag = " [warning](ignored)[/]" if p.ignored else ""
    where = f"  face {p.best_face} in [filepath]{escape(safe_path(best))}[/]" if best else ""
    out.result(
        f"[num]{p.id:>4}[/]  {label}{flag}  [num]{p.faces}[/] faces in [num]{p.photos}[/] photos{where}"
    )


@app.callback()
def people_command(
    ctx: typer.Context,
    index: o.IndexPath = None,
    all_: Annotated[bool, typer.Option("--all", help="Also list ignored people.")] = False,
    json_out: o.Json = False,
) -> None:
    """List people: number, name, how many faces and photos, and a representative face
    (the sharpest, largest one). New faces are grouped into people first."""
    if ctx.invoked_subcommand is not None:
        return
    from ..config import default_index_path
    from ..index import Index
    from ..library.people import list_people

    out = Output(json_mode=json_out)
    path = index or default_index_path()
    with (
        guarded(out),
        index_lock(out, path, "people", False, can_wait=False),
        Index.open(path, create=False) as idx,
    ):
        everyone = list_people(idx, include_ignored=all_)
        for p in everyone:
            if json_out:
                out.json(_person_json(p, idx))
            else:
                _print_person(out, p, idx)
        if not everyone and not json_out:
            out.info("no people yet: 'phototag scan' finds faces (unless --no-faces)")


def _change(index: o.IndexPath, json_out: bool, command: str, action: object) -> None:
    from ..config import default_index_path
    from ..index import Index

    out = Output(json_mode=json_out)
    path = index or default_index_path()
    with (
        guarded(out),
        index_lock(out, path, command, False, can_wait=False),
        Index.open(path, create=False) as idx,
    ):
        p = action(idx)  # type: ignore[operator]
        if json_out:
            out.json(_person_json(p, idx))
        else:
            _print_person(out, p, idx)
    raise typer.Exit(ExitCode.OK)


@app.command("name")
def name_command(
    person: PersonRef,
    name: Annotated[str, typer.Argument(help="The name, as it should appear in keywords.")],
    index: o.IndexPath = None,
    json_out: o.Json = False,
) -> None:
    """Name a person (all their faces, and new faces that match them later). Giving the name
    another person already has merges the two. 'phototag write' then writes face regions
    and person keywords."""
    from ..library.people import name as do

    _change(index, json_out, "people name", lambda idx: do(idx, person, name))


@app.command("unname")
def unname_command(person: PersonRef, index: o.IndexPath = None, json_out: o.Json = False) -> None:
    """Take a person's name away (their faces stay grouped)."""
    from ..library.people import unname as do

    _change(index, json_out, "people unname", lambda idx: do(idx, person))


@app.command("merge")
def merge_command(
    people: Annotated[list[str], typer.Argument(help="People to merge (numbers or names).")],
    into: Annotated[str, typer.Option("--into", help="The person who gets their faces.")],
    index: o.IndexPath = None,
    json_out: o.Json = False,
) -> None:
    """Merge people who are one person: their faces all go to --into."""
    from ..library.people import merge as do

    _change(index, json_out, "people merge", lambda idx: do(idx, people, into))


@app.command("remove-face")
def remove_face_command(
    face: Annotated[int, typer.Argument(help="The face's number (from 'phototag people show').")],
    to: Annotated[
        str | None,
        typer.Option(
            "--to", help="Give it to this person (number or name; a new name makes a new person)."
        ),
    ] = None,
    index: o.IndexPath = None,
    json_out: o.Json = False,
) -> None:
    """Take a wrongly grouped face out of its person (split): into --to, or a person of its own."""
    from ..library.people import remove_face as do

    _change(index, json_out, "people remove-face", lambda idx: do(idx, face, to))


@app.command("ignore")
def ignore_command(
    person: PersonRef,
    undo: Annotated[bool, typer.Option("--undo", help="List, tag and write them again.")] = False,
    index: o.IndexPath = None,
    json_out: o.Json = False,
) -> None:
    """Ignore a person (a stranger in the background): not listed, never written into files."""
    from ..library.people import ignore as do

    _change(index, json_out, "people ignore", lambda idx: do(idx, person, not undo))


@app.command("show")
def show_person_command(
    person: PersonRef,
    index: o.IndexPath = None,
    json_out: o.Json = False,
) -> None:
    """List a person's faces: face number, photo, box (fractions of the photo) and quality."""
    from ..config import default_index_path
    from ..index import Index
    from ..index import faces as db
    from ..library.people import resolve

    out = Output(json_mode=json_out)
    with guarded(out), Index.open(index or default_index_path(), create=False) as idx:
        p = resolve(idx, person)
        _print_person(out, p, idx) if not json_out else None
        for f in db.faces_of_person(idx, p.id):
            path = db.path_of_face(idx, f.id)
            if json_out:
                out.json({"face": f.id, "person": p.id, "photo": str(path), "box": [round(v, 4) for v in f.box],
                          "quality": round(f.quality, 3), "assigned": f.assigned.value})  # fmt: skip
            else:
                box = ", ".join(f"{v:.3f}" for v in f.box)
                out.result(f"  face [num]{f.id}[/]  [filepath]{escape(safe_path(path))}[/]  box {box}  "
                           f"quality {f.quality:.2f}  ({f.assigned.value})")  # fmt: skip


@app.command("similar")
def similar_command(
    face: Annotated[
        int, typer.Argument(help="A face's number (from 'phototag people show' or 'show').")
    ],
    top: Annotated[int, typer.Option("--top", "-n", min=1, help="How many faces to list.")] = 20,
    max_distance: Annotated[
        float,
        typer.Option(
            min=0.0, max=2.0, help="Only faces within this cosine distance (grouping uses 0.30)."
        ),
    ] = 0.5,
    index: o.IndexPath = None,
    json_out: o.Json = False,
) -> None:
    """Photos with faces like this one, nearest first: find a person's photos from one face."""
    from ..config import default_index_path
    from ..index import Index
    from ..index import faces as db
    from ..library.people import similar_faces

    out = Output(json_mode=json_out)
    with guarded(out), Index.open(index or default_index_path(), create=False) as idx:
        for m in similar_faces(idx, face, top=top, max_distance=max_distance):
            p = db.person(idx, m.person_id) if m.person_id is not None else None
            if json_out:
                out.json({"face": m.face_id, "photo": str(m.photo), "person": m.person_id,
                          "name": p.name if p else None, "distance": round(m.distance, 4)})  # fmt: skip
            else:
                who = escape(p.label) if p else "no person"
                out.result(f"[num]{m.distance:.3f}[/]  face [num]{m.face_id}[/]  "
                           f"[filepath]{escape(safe_path(m.photo))}[/]  ({who})")  # fmt: skip


@app.command("forget")
def forget_command(
    yes: Annotated[bool, typer.Option("--yes", help="Do it without asking.")] = False,
    index: o.IndexPath = None,
    json_out: o.Json = False,
) -> None:
    """Remove all face data from the index: faces, descriptors, people, names, people tags; and
    stop finding faces in later scans of this index (until 'scan --faces'). Names already
    written into files are taken back by 'phototag clean' (or the next 'phototag write')."""
    from ..config import default_index_path
    from ..index import Index
    from ..library.people import forget

    out = Output(json_mode=json_out)
    if not yes:
        out.error("this removes every face, person and name from the index: add --yes")
        raise typer.Exit(ExitCode.USAGE)
    path = index or default_index_path()
    with (
        guarded(out),
        index_lock(out, path, "people forget", False, can_wait=False),
        Index.open(path, create=False) as idx,
    ):
        gone = forget(idx)
        if json_out:
            out.json({"faces": gone.faces, "people": gone.people})
        else:
            out.info(f"removed [num]{gone.faces}[/] faces and [num]{gone.people}[/] people; "
                     "faces are off for later scans (scan --faces turns them on)")  # fmt: skip
