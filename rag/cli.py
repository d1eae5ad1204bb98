"""Command line for the knowledge base: bulk ingest, list, delete, search, reindex, stats, snapshots, restore, migrate.

The command line is the operator: it changes the shared knowledge base whatever `shared_kb_writers`
says, and `list` shows people's private documents too (by owner tag, never by name).

    python -m rag ingest sample_kb/docs --data-dir data
    python -m rag list
    python -m rag search "What does E-PW-131 mean?" --top-k 5
    python -m rag delete 568bc0e09ec07a07
    python -m rag snapshots
    python -m rag restore previous   # or a snapshot id: the shared documents as they were then
    python -m rag restore --document handbook.md   # one deleted or replaced shared document
    python -m rag migrate --to postgres --database-url postgresql://…   # the index into PostgreSQL (or --to faiss)

Any app setting can follow the command, with the same flags as `python app.py` (--data-dir,
--embed-model, --chunk-size, --chunk-overlap, --top-k, --dense-k, --keyword-k, --fusion,
--max-upload-mb, ...), and `EXPERT_*` environment variables apply as in the app.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from core.arguments import build_parser
from core.settings import GROUPS, Settings, SettingsError
from rag.errors import RagError
from rag.knowledge_base import KnowledgeBase
from rag.manifest import Manifest
from rag.migrate import migrate
from rag.records import FileReport, Placement


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m rag",
        description="Manage the document index of the industry-expert chat.",
        epilog="App settings may follow the command (e.g. --data-dir DIR --embed-model NAME --chunk-size N); "
        "see `python app.py --help` for all of them.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    ingest = commands.add_parser("ingest", help="Add every file under a folder; unsupported ones are reported.")
    ingest.add_argument("folder", type=Path, help="Folder to ingest; subfolders too unless --no-recursive.")
    ingest.add_argument("--no-recursive", action="store_true", help="Only the folder's own files.")
    ingest.add_argument("--replace", action="store_true", help=REPLACE_HELP)
    add = commands.add_parser("add", help="Add the given files.")
    add.add_argument("files", type=Path, nargs="+", help="Files to add (.txt, .md, .pdf, .docx, .html).")
    add.add_argument("--replace", action="store_true", help=REPLACE_HELP)
    commands.add_parser("list", help="List the indexed documents.")
    delete = commands.add_parser("delete", help="Remove one document by its id (see `list`).")
    delete.add_argument("doc_id", help="Document id as shown by `list`.")
    search = commands.add_parser("search", help="Show the passages a question retrieves.")
    search.add_argument("query", help="The question or keywords.")
    commands.add_parser("reindex", help="Re-chunk and re-embed everything with the current settings.")
    commands.add_parser("stats", help="Summary of the index.")
    commands.add_parser("snapshots", help="List the kept snapshots, newest first, with what each changed.")
    restore = commands.add_parser(
        "restore", help="Bring back the shared documents of an earlier snapshot (as a new snapshot; undoable)."
    )
    restore.add_argument(
        "snapshot", nargs="?", help="A snapshot id from `snapshots`, or 'previous' (the one before the current)."
    )
    restore.add_argument(
        "--document",
        metavar="NAME",
        help="Bring back only this deleted or replaced shared document (its file name or id, as `snapshots` lists "
        "them); these stay restorable for --shared-history-days, re-index included.",
    )
    migrate = commands.add_parser(
        "migrate",
        help="Copy the index between the data directory (faiss) and the database (postgres), without re-embedding.",
    )
    migrate.add_argument(
        "--to",
        required=True,
        choices=("postgres", "faiss"),
        help="postgres: from --data-dir into the (empty) database at --database-url; faiss: the other way.",
    )
    return parser


REPLACE_HELP = (
    "Replace a shared document of the same name (the old version stays in a snapshot); without it such a file "
    "is refused."
)


def _progress(fraction: float, message: str) -> None:
    print(f"[{fraction:4.0%}] {message}", file=sys.stderr, flush=True)


def _print_reports(reports: list[FileReport]) -> int:
    for r in reports:
        mark = "ok " if r.ok else "ERR"
        ident = f" [{r.doc_id}]" if r.doc_id else ""
        print(f"{mark} {r.name}{ident}: {r.message}")
    failed = sum(1 for r in reports if not r.ok)
    print(f"{len(reports) - failed} of {len(reports)} files in the index; {failed} refused.")
    return 1 if failed else 0


def _changes(before: Manifest, after: Manifest) -> str:
    """What going from `before` to `after` does to the shared documents, in one line."""
    old = {(d.name, d.sha256) for d in before.documents if d.owner is None}
    new = {(d.name, d.sha256) for d in after.documents if d.owner is None}
    gone, came = sorted(n for n, _ in old - new), sorted(n for n, _ in new - old)
    parts = ([f"+{n}" for n in came] + [f"-{n}" for n in gone]) or ["no change to the shared documents"]
    return " ".join(parts)


def _print_snapshots(kb: KnowledgeBase) -> int:
    snapshots = kb.snapshots()
    for older, m in zip([*snapshots[1:], None], snapshots, strict=True):
        shared = sum(1 for d in m.documents if d.owner is None)
        mark = "*" if m.snapshot_id == kb.snapshot_id else " "
        change = _changes(older, m) if older is not None else "(oldest kept)"
        print(f"{mark} {m.snapshot_id}  {m.created_at}  {shared:3d} shared documents  {change}")
    print(f"{len(snapshots)} snapshots kept (* = current); `restore ID` brings one back.")
    history = kb.shared_history()
    if history:
        print("Deleted or replaced shared documents (`restore --document NAME` brings one back):")
        for h in reversed(history):
            print(f"  {h.removed_at}  {h.entry.doc_id}  {h.entry.name}")
    return 0


def _restore(kb: KnowledgeBase, snapshot_id: str | None, document: str | None) -> int:
    if (snapshot_id is None) == (document is None):
        print("Name a snapshot (or 'previous'), or one document with --document NAME.", file=sys.stderr)
        return 2
    if document is not None:
        report = kb.restore_document(document, _progress)
        print(f"{'ok ' if report.ok else 'ERR'} {report.name} [{report.doc_id}]: {report.message}")
        return 0 if report.ok else 1
    if snapshot_id == "previous":
        older = [m.snapshot_id for m in kb.snapshots() if m.snapshot_id < kb.snapshot_id]
        if not older:
            print("There is no earlier snapshot to restore.", file=sys.stderr)
            return 1
        snapshot_id = older[0]
    before, after = kb.restore(snapshot_id)
    print(f"Restored the shared documents of {snapshot_id} as snapshot {after.snapshot_id}: {_changes(before, after)}.")
    print(f"To undo: python -m rag restore {before.snapshot_id}")
    return 0


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Execute one parsed command; returns the exit status. Raises RagError for index problems."""
    if args.command == "migrate":
        done = migrate(settings, args.to, _progress)
        print(
            f"Migrated {done.documents} documents ({done.chunks} chunks) and {done.snapshots} snapshots from "
            f"{done.source} to {done.target}; {done.originals} stored originals copied."
        )
        if done.missing_originals:
            missing = ", ".join(done.missing_originals)
            print(f"Originals missing at the source (a re-index cannot re-read them): {missing}")
        target = "--index-backend postgres" if args.to == "postgres" else "--index-backend faiss"
        print(f"Start the app with {target} to use it.")
        return 0
    if args.command == "reindex":
        return _print_reports(KnowledgeBase.from_settings(settings).reindex(_progress))
    kb = KnowledgeBase.from_settings(settings).open()
    if args.command == "ingest":
        placement = Placement(replace=args.replace)
        return _print_reports(kb.add_folder(args.folder, _progress, not args.no_recursive, placement=placement))
    if args.command == "add":
        return _print_reports(kb.add_files(args.files, _progress, placement=Placement(replace=args.replace)))
    if args.command == "snapshots":
        return _print_snapshots(kb)
    if args.command == "restore":
        return _restore(kb, args.snapshot, args.document)
    if args.command == "list":
        docs = kb.list_documents()
        for d in docs:
            where = "shared" if d.shared else f"private:{d.owner}"
            print(f"{d.doc_id}  {d.added_date}  {d.chunks:5d} chunks  {where:<28}  {d.name}")
        print(f"{len(docs)} documents, snapshot {kb.snapshot_id}.")
    elif args.command == "delete":
        kb.delete(args.doc_id)
        print(f"Deleted {args.doc_id}; snapshot {kb.snapshot_id}.")
    elif args.command == "search":
        passages = kb.search(args.query)
        if not passages:
            print("Nothing relevant in the index.")
        for n, p in enumerate(passages, start=1):
            text = " ".join(p.text.split())
            print(f"{n}. {p.source}, {p.location} (score {p.score:.4f})\n   {text[:300]}")
    elif args.command == "stats":
        for key, value in vars(kb.stats()).items():
            print(f"{key:22s} {value}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # the app's settings first, so that a setting's value is never taken for the command's optional argument
    helps = [a for a in argv if a in ("-h", "--help")]
    settings_parser = build_parser(list(GROUPS.values()))
    settings_parser.allow_abbrev = False  # a command's own option (migrate --to) is never a setting's abbreviation
    _, command = settings_parser.parse_known_args([a for a in argv if a not in helps])
    args = _parser().parse_args(command + helps)
    rest = list(argv)
    for token in command:
        rest.remove(token)
    try:
        settings = Settings.load(rest)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        return run(args, settings)
    except RagError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
