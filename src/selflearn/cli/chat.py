"""``selflearn chat``: type to the reference assistant (Home Assistant's NLU over a simulated home)
with selflearn in the loop, and see what it rewrote, asked and learned.

The loop itself is :class:`ChatSession` (fed lines by ``input()`` from the command, by a list in
the tests); the command only loads the home, the rewriter and the store.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from selflearn.assistant.conversation import Conversation, Exchange
from selflearn.assistant.devices import HomeState
from selflearn.assistant.pipeline import Assistant, AssistantConfig
from selflearn.cli.apps import app
from selflearn.core.errors import ConfigError, SelflearnError
from selflearn.core.home import Home, read_home_text
from selflearn.core.schema import MAX_TEXT_CHARS, DialogueAct, Turn
from selflearn.core.store import Store
from selflearn.dialogue import ConceptBook, DialogueConfig, TeachBudget, Teaching
from selflearn.rewrite.logs import history
from selflearn.rewrite.rewriter import ConfirmMode, Rewriter, RewriterConfig

__all__ = [
    "ChatSession",
    "chat_cmd",
    "confirm_mode",
    "describe",
    "example_requests",
    "load_home",
    "load_rewriter",
    "pick_area",
    "remember",
]

CONFIRM_MODES: tuple[ConfirmMode, ...] = ("off", "guesses", "unconfirmed", "all")
QUESTION_TIMEOUT_S = 60.0
"""How long a question waits for its typed answer (a spoken one waits 8 s; typing is slower)."""
PROMPT = "you> "
HELP_LINES = (
    "Type a request as you would say it; the assistant answers and, dimmed under its answer, shows",
    "what selflearn did: a rewrite, a question it asked, how the question ended, what it was taught.",
    "Answer a question with yes / no / never mind, or just say something else.",
    "  :state    the devices and their states",
    "  :learned  everything that acts here: what you taught, your yes answers, what your retries showed",
    "  :help     this text",
    "  :quit     leave (or Ctrl-D / Ctrl-C)",
)


# --- loading ---------------------------------------------------------------------------------


def load_home(path: Path | None = None) -> Home:
    """The home in ``path`` (YAML or JSON in the shape of :meth:`Home.to_dict`), or the built-in
    example home when ``path`` is ``None``. Raises :class:`ConfigError` with one clear line."""
    if path is None:
        where = "the built-in example home"
        raw = (resources.files("selflearn") / "data" / "homes" / "example.yaml").read_text(encoding="utf-8")
        suffix = ".yaml"
    else:
        where = f"home file {path}"
        raw = read_home_text(path)
        suffix = path.suffix.lower()
    try:
        data = json.loads(raw) if suffix == ".json" else yaml.safe_load(raw)
    except (ValueError, yaml.YAMLError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{where} is not valid {'JSON' if suffix == '.json' else 'YAML'}: {first}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must hold a mapping with areas and entities (see Home.to_dict)")
    try:
        home = Home.from_dict(data)
    except SelflearnError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    except (TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{where}: not a home configuration ({type(exc).__name__}: {exc})") from exc
    if not home.entities:
        raise ConfigError(f"{where} has no entities: there is nothing to talk to")
    return home


def pick_area(home: Home, wanted: str | None) -> str | None:
    """The name of the area the chat device stands in: ``wanted`` (a name, alias or id), else
    Living Room when the home has one, else its first area (``None`` for a home without areas)."""
    if wanted is not None:
        area = home.area_named(wanted)
        if area is None:
            names = ", ".join(a.name for a in home.areas) or "none"
            raise ConfigError(f"--area {wanted!r} is not an area of home {home.home_id} (its areas: {names})")
        return area.name
    area = home.area_named("Living Room") or (home.areas[0] if home.areas else None)
    return area.name if area is not None else None


def load_rewriter(folder: Path | None, confirm: str) -> Rewriter:
    """The trained rewriter in ``folder`` with ``confirm`` as its asking mode, or, without a
    folder, a rewriter with only the personal layer (it learns from your retries as you chat)."""
    mode = confirm_mode(confirm)
    if folder is None:
        return Rewriter.from_parts(config=RewriterConfig(confirm=mode))
    rewriter = Rewriter.load(folder)
    rewriter.config = replace(rewriter.config, confirm=mode)
    return rewriter


def confirm_mode(confirm: str) -> ConfirmMode:
    """``--confirm`` checked: off, guesses, unconfirmed or all."""
    for mode in CONFIRM_MODES:
        if confirm == mode:
            return mode
    raise ConfigError(f"--confirm must be one of {', '.join(CONFIRM_MODES)}, not {confirm!r}")


# --- what is shown ---------------------------------------------------------------------------


def example_requests(home: Home, n: int = 4) -> list[str]:
    """``n`` requests the assistant understands in ``home`` from any of its areas, for the banner
    (each names its device, so none depends on the area the chat stands in)."""
    lights = [e for e in home.entities if e.domain == "light"]
    dimmable = [e for e in lights if "brightness" in e.features]
    found: list[str] = []
    if lights:
        # Preferably a light in another area than the dimmable one shown next.
        other = [e for e in lights if not dimmable or e.area_id != dimmable[0].area_id]
        found.append(f"turn on the {(other or lights)[0].name.lower()}")
    if dimmable:
        found.append(f"set the {dimmable[0].name.lower()} to 50 percent")
    for domain, template in (
        ("lock", "lock the {}"),
        ("climate", "set the {} to 21 degrees"),
        ("media_player", "pause the {}"),
        ("cover", "open the {}"),
        ("fan", "turn on the {}"),
        ("switch", "turn on the {}"),
    ):
        entity = next((e for e in home.entities if e.domain == domain), None)
        if entity is not None:
            found.append(template.format(entity.name.lower()))
    found.append("what time is it")
    return list(dict.fromkeys(found))[:n]


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "\\'") + "'"


def describe(exchange: Exchange) -> list[str]:
    """The detail lines shown under the assistant's answer: how a waiting question ended, what
    was rewritten and done, the question now asked and what was taught (plain text)."""
    lines: list[str] = []
    for act in exchange.acts:
        if act.raised_by != "user":  # the user's own definitions and commands were no answer
            lines.append(f"question ended: {act.answer}")
    for handled in exchange.handled:
        turn = handled.turn
        if turn.rewrite is not None:
            rw = turn.rewrite
            lines.append(f"rewrote: {_quoted(rw.original_text)} -> {_quoted(rw.rewritten_text)} ({rw.layer})")
        effects = handled.actions
        for effect in effects:
            what = [effect.intent, ", ".join(sorted(effect.targets))]
            if effect.params:
                what.append("(" + ", ".join(f"{k}={v}" for k, v in effect.params) + ")")
            lines.append("did: " + " ".join(w for w in what if w))
        if effects or (turn.nlu is not None and turn.nlu.matcher == "teach"):
            continue
        if turn.result is not None and turn.result.status != "question":
            why = (
                f"{turn.result.status}: {turn.result.error_code}"
                if turn.result.error_code
                else turn.result.status
            )
            lines.append(f"did: nothing ({why})")
    if exchange.question is not None:
        lines.append(f"asked: {exchange.question.kind}")
    for act in exchange.acts:
        if act.taught is not None or (act.kind == "teach" and act.answer == "taught"):
            about = _quoted(act.proposal) if act.proposal else ""
            lines.append(
                "taught: " + " ".join(w for w in (about, f"({act.taught})" if act.taught else "") if w)
            )
    return lines


def _details(attributes: dict[str, Any]) -> str:
    shown = []
    for key, value in sorted(attributes.items()):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        unit = "%" if key == "brightness" else ""
        shown.append(f"{key} {value}{unit}")
    return ", ".join(shown)


# --- the loop --------------------------------------------------------------------------------


class ChatSession:
    """A person typing to the assistant on one device: :meth:`handle` takes one line, :meth:`run`
    reads lines until ``:quit``, end of input or Ctrl-C. Everything shown goes to ``console``."""

    def __init__(
        self,
        conversation: Conversation,
        console: Console,
        *,
        store: Store | None = None,
        rewriter_label: str = "",
    ) -> None:
        self.conversation = conversation
        self.console = console
        self.store = store
        self.rewriter_label = rewriter_label
        self._records: list[Turn | DialogueAct] = []
        before = conversation.log

        def log(record: Turn | DialogueAct) -> None:
            self._records.append(record)
            if before is not None:
                before(record)

        conversation.log = log

    @property
    def home(self) -> Home:
        return self.conversation.state.home

    # output helpers
    def _dim(self, text: str) -> None:
        self.console.print(f"[dim]{escape(text)}[/dim]")

    def banner(self) -> None:
        """Who the assistant is, the home's areas and devices, requests to try, ``:help``."""
        home, c = self.home, self.console
        c.print(
            f"[bold]selflearn chat[/bold] -- home [bold]{escape(home.home_id)}[/bold], you are in the "
            f"[bold]{escape(self.conversation.device.area or 'home')}[/bold]"
        )
        c.print(f"rewriter: {escape(self.rewriter_label)}")
        by_area: dict[str | None, list[str]] = {}
        for entity in home.entities:
            by_area.setdefault(entity.area_id, []).append(entity.name)
        c.print("areas and devices:")
        for area in home.areas:
            aliases = f" (also {', '.join(area.aliases)})" if area.aliases else ""
            names = ", ".join(by_area.get(area.area_id, [])) or "-"
            c.print(f"  {escape(area.name + aliases)}: {escape(names)}")
        if by_area.get(None):
            c.print(f"  (no area): {escape(', '.join(by_area[None]))}")
        c.print("try: " + "  |  ".join(escape(s) for s in example_requests(home)))
        c.print("then say something your own way. :help for help, :quit to leave.")

    def help(self) -> None:
        for line in HELP_LINES:
            self.console.print(escape(line))

    def show_state(self) -> None:
        state = self.conversation.state
        table = Table(box=box.SIMPLE, show_edge=False, pad_edge=False)
        table.add_column("entity", no_wrap=True)
        for col in ("device", "area", "state", "details"):
            table.add_column(col)
        for entity in self.home.entities:
            area = self.home.area_by_id.get(entity.area_id or "")
            status = state.states.get(entity.entity_id, "?")
            if entity.entity_id in state.unavailable:
                status += " (unavailable)"
            table.add_row(
                escape(entity.entity_id),
                escape(entity.name),
                escape(area.name if area else "-"),
                escape(status),
                escape(_details(state.attributes.get(entity.entity_id, {}))),
            )
        self.console.print(table)
        for timer in state.timers:
            self.console.print(
                f"timer: {escape(str(timer.get('name') or ''))} {timer.get('seconds')} s"
                + (" (paused)" if timer.get("paused") else "")
            )
        if state.shopping_list:
            self.console.print("shopping list: " + escape(", ".join(state.shopping_list)))

    def show_learned(self) -> None:
        """Everything that acts in this home for you (:meth:`Dialogue.learned
        <selflearn.dialogue.Dialogue.learned>`): what you taught, the proposals you said yes to,
        what the assistant learned from your retries -- as it stands now, also after a restart."""
        conversation = self.conversation
        listed = conversation.assistant.dialogue.learned(conversation.household_id, conversation.user_id)
        for item in listed:
            means = "; ".join(item.means)
            if item.how == "taught":
                line = f"{item.kind}: {_quoted(item.said)} -> {means}"
            elif item.how == "answer":
                line = f"you said yes: {_quoted(item.said)} means {_quoted(means)}"
            else:
                line = f"from your retries: {_quoted(item.said)} -> {_quoted(means)}"
            self.console.print("  " + escape(line))
        if not listed:
            self.console.print("nothing learned yet")

    def handle(self, line: str) -> bool:
        """Act on one typed line; ``False`` when the chat should end."""
        # bytes that are not UTF-8 reach input() as lone surrogates: a turn's text cannot hold them
        text = line.encode("utf-8", "replace").decode("utf-8").strip()
        if not text:
            return True
        if text.startswith(":"):
            command = text[1:].strip().lower()
            if command in ("quit", "q", "exit"):
                return False
            actions: dict[str, Callable[[], None]] = {
                "help": self.help,
                "h": self.help,
                "state": self.show_state,
                "learned": self.show_learned,
            }
            action = actions.get(command)
            if action is None:
                self.console.print(f"unknown command {escape(text)} (try :help)")
            else:
                action()
            return True
        if len(text) > MAX_TEXT_CHARS:
            # a turn holds at most this much text (the log schema): say so instead of failing
            self.console.print(
                f"[bold cyan]assistant>[/bold cyan] That is too long for me: {len(text):,} characters, "
                f"and I take at most {MAX_TEXT_CHARS:,}. Say it in fewer words."
            )
            return True
        exchange = self.conversation.say(text)
        self.console.print(f"[bold cyan]assistant>[/bold cyan] {escape(exchange.response or '(nothing)')}")
        for detail in describe(exchange):
            self._dim("  " + detail)
        self._flush()
        return True

    def _flush(self) -> None:
        """Log the records that became final to the store, if there is one."""
        records, self._records[:] = list(self._records), []
        if self.store is None or not records:
            return
        report = self.store.ingest_records([r.model_dump(mode="json") for r in records], source="chat")
        for bad in report.rejected:
            self._dim(f"  store: record {bad.row} rejected ({bad.field}: {bad.reason})")

    def run(self, read: Callable[[str], str] = input, echo: bool = False) -> None:
        """Read lines with ``read(PROMPT)`` until ``:quit``, end of input or Ctrl-C (``echo``:
        print each line after the prompt, for input that does not echo itself, e.g. a pipe)."""
        while True:
            try:
                line = read(PROMPT)
            except (EOFError, KeyboardInterrupt):
                self.console.print()
                break
            if echo:
                self.console.print(escape(line), highlight=False)
            try:
                if not self.handle(line):
                    break
            except KeyboardInterrupt:
                self.console.print()
                break
        self.close()
        self.console.print("bye")

    def close(self) -> None:
        """End a question still waiting (unanswered: ``timeout``), so the store gets its records."""
        pending = self.conversation.pending
        if pending is None:
            return
        ended = self.conversation.expire(pending.expires_at + timedelta(milliseconds=1))
        if ended is not None:
            for detail in describe(ended):
                self._dim("  " + detail)
        self._flush()


def remember(store: Store, rewriter: Rewriter, budget: TeachBudget, home: Home) -> int:
    """Give a chat restarted on ``store`` what its home taught before: the logged turns replayed
    into the rewriter's personal layer (the answers to "Did you mean ...?", the fixes), the
    refusals to teach into ``budget``; returns how many turns and feedback records."""
    n = 0
    for record in history(store, household_id=home.home_id):
        if isinstance(record, Turn):
            rewriter.observe(record, home)
        else:
            rewriter.observe_feedback(record)
        n += 1
    acts = store.dialogue_acts(where=f"household_id = '{home.home_id.replace(chr(39), chr(39) * 2)}'")
    budget.restore(DialogueAct.model_validate(row) for row in acts)
    return n


# --- the command -----------------------------------------------------------------------------


CHAT_HELP = (
    "Talk to the reference assistant, with selflearn in the loop: try the product in five minutes.\n\n"
    "Type requests as you would say them to a voice assistant. Home Assistant's own English NLU answers "
    "over a simulated home, and under each answer you see what selflearn rewrote, what it asked "
    "('Did you mean ...?') and what it learned. Commands: :state (the devices), :learned (what was "
    "taught), :help, :quit (or Ctrl-D).\n\n"
    "Example: selflearn chat --area Kitchen, then type 'turn on the kitchen light', then something "
    "your own way, e.g. 'kill the lights in the kitchen', and answer its question with yes or no. "
    "The starter that ships in the package asks from the first line (--rewriter FOLDER: your own "
    "trained rewriter; --no-starter: only what you teach and retry)."
)


@app.command("chat", help=CHAT_HELP)
def chat_cmd(
    home_file: Annotated[
        Path | None,
        typer.Option(
            "--home",
            help="The home, YAML or JSON (the shape of Home.to_dict); default: a built-in "
            "example home (living room, kitchen, bedroom, hall, garage).",
        ),
    ] = None,
    rewriter_dir: Annotated[
        Path | None,
        typer.Option(
            "--rewriter",
            "-r",
            help="Trained rewriter folder (`selflearn train rewriter`, `selflearn starter`). "
            "Default: the starter in the package, which asks 'Did you mean ...?' from the first "
            "line; with --no-starter only the personal layer runs: it learns from your own retries.",
        ),
    ] = None,
    starter: Annotated[
        bool,
        typer.Option(
            help="Without --rewriter, chat with the starter rewriter that ships in the package "
            "(--no-starter: the personal layer only)."
        ),
    ] = True,
    confirm: Annotated[
        str,
        typer.Option(
            help="When the rewriter asks 'Did you mean ...?' first: off, guesses, unconfirmed or all."
        ),
    ] = "guesses",
    area: Annotated[
        str | None,
        typer.Option(help="Area the device stands in (default: Living Room, else the first area)."),
    ] = None,
    user: Annotated[str, typer.Option(help="Your user id.")] = "me",
    store_path: Annotated[
        Path | None,
        typer.Option(
            "--store", "-s", help="DuckDB store to log every final turn and question to (source chat)."
        ),
    ] = None,
    no_color: Annotated[bool, typer.Option("--no-color", help="Plain text: no colours or styles.")] = False,
) -> None:
    """Talk to the reference assistant with selflearn in the loop (help: :data:`CHAT_HELP`)."""
    console = Console(color_system=None if no_color else "auto", highlight=False, soft_wrap=True)
    home = load_home(home_file)
    where = pick_area(home, area)
    confirm_mode(confirm)  # a bad value fails before anything slow is loaded
    from selflearn.starter import default_rewriter, rewriter_label

    folder = default_rewriter(rewriter_dir, starter)
    what = rewriter_label(folder, rewriter_dir)
    console.print(
        "[dim]loading Home Assistant's NLU" + (f" and {escape(what)}" if what else "") + " ...[/dim]"
    )
    rewriter = load_rewriter(folder, confirm)
    config = AssistantConfig(
        asr="exact",
        ask=True,
        rewrite_when="on_failure",
        dialogue=DialogueConfig(timeout_s=QUESTION_TIMEOUT_S),
    )
    assistant = Assistant(config, rewriter=rewriter)
    state = HomeState.initial(home)
    assistant.understand("turn on the light", state, None)  # load the NLU before the first prompt
    rewriter.warm_up(home)  # and the rewriter's parts (and the home's sentences, when it has them)
    conversation = Conversation(
        assistant,
        state,
        household_id=home.home_id,
        user_id=user,
        device_id=f"chat-{secrets.token_hex(4)}",
        area=where,
    )
    label = (
        f"{what} (confirm={confirm})"
        if what is not None
        else f"personal layer only, learning from your retries (confirm={confirm}; "
        "--rewriter FOLDER for a trained one)"
    )
    with contextlib.ExitStack() as stack:
        store = None
        if store_path is not None:
            store = stack.enter_context(Store(store_path))
            store.put_home(home.home_id, home.to_dict(), source="chat")
        # Teaching on, concepts kept in the store when there is one. Typed text has no
        # misrecognitions, so a word it fails on once is worth asking about.
        book = ConceptBook.from_store(store) if store is not None else ConceptBook()
        budget = TeachBudget(min_repeats=1)
        assistant.teaching = Teaching(book, budget)
        if store is not None:  # what this home taught before: its yes and no answers, its refusals
            remembered = remember(store, rewriter, budget, home)
            if remembered:
                console.print(f"[dim]remembered {remembered:,} earlier turns of {escape(home.home_id)}[/dim]")
        session = ChatSession(conversation, console, store=store, rewriter_label=label)
        session.banner()
        if sys.stdin.isatty():
            with contextlib.suppress(ImportError):
                import readline  # noqa: F401 - line editing and history for input()
        session.run(echo=not sys.stdin.isatty())
