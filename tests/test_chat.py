"""``selflearn chat``: a person typing to the reference assistant with selflearn in the loop.

The real NLU over the built-in example home, a one-rule table rewriter whose rewrites are guesses
(so the assistant asks "Did you mean ...?"): the loop fed from a list of lines, the command through
typer, and the program in a terminal, driven through tmux as a person would type.
"""

from __future__ import annotations

import io
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from selflearn.assistant.conversation import Conversation, Exchange
from selflearn.assistant.devices import HomeState
from selflearn.assistant.pipeline import Assistant, AssistantConfig
from selflearn.cli import app
from selflearn.cli.chat import ChatSession, describe, example_requests, load_home, load_rewriter, pick_area
from selflearn.core.errors import ConfigError
from selflearn.core.schema import DialogueAct
from selflearn.core.store import Store
from selflearn.rewrite.rewriter import Rewriter
from selflearn.rewrite.table import RewriteTable

KILL = "kill the lights in the kitchen"
QUESTION = "Did you mean turn off the lights in the kitchen?"
REWROTE = "rewrote: 'kill the lights in the kitchen' -> 'turn off the lights in the kitchen' (precomputed)"


@pytest.fixture(scope="module")
def rewriter_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved table-only rewriter: its one rule is a mined guess, so with confirm=guesses it asks."""
    table = RewriteTable.from_rules([("kill the lights in the {area}", "turn off the lights in the {area}")])
    return Rewriter.from_parts(table=table).save(tmp_path_factory.mktemp("rewriter"))


def _session(rewriter_dir: Path, store: Store | None = None) -> tuple[ChatSession, io.StringIO]:
    home = load_home()
    assistant = Assistant(
        AssistantConfig(asr="exact", ask=True, rewrite_when="on_failure"),
        rewriter=load_rewriter(rewriter_dir, "guesses"),
    )
    conversation = Conversation(assistant, HomeState.initial(home), household_id=home.home_id, area="Kitchen")
    out = io.StringIO()
    console = Console(file=out, color_system=None, width=120, soft_wrap=True)
    return ChatSession(conversation, console, store=store, rewriter_label=str(rewriter_dir)), out


def _reader(lines: list[str], out: io.StringIO) -> Callable[[str], str]:
    """``input()`` typed by a person: the prompt and the line land in the output, then end of input."""
    pending: Iterator[str] = iter(lines)

    def read(prompt: str) -> str:
        line = next(pending, None)
        if line is None:
            raise EOFError
        out.write(f"{prompt}{line}\n")
        return line

    return read


# --- the home --------------------------------------------------------------------------------


def test_the_built_in_home_loads_and_its_requests_work() -> None:
    home = load_home()
    assert home.home_id == "example"
    assert [a.name for a in home.areas] == ["Living Room", "Kitchen", "Bedroom", "Hall", "Garage"]
    assert home.area_named("Lounge") is not None and len(home.entities) == 9
    state = HomeState.initial(home)
    assert state.states["media_player.tv"] == "playing" and state.states["lock.front_door"] == "locked"
    assert state.states["cover.garage_door"] == "closed" and state.states["climate.thermostat"] == "heat"
    chat = Conversation(
        Assistant(AssistantConfig(asr="exact")), state, household_id="example", area="Kitchen"
    )
    asked = [
        "turn on the kitchen light",
        "set the living room ceiling to 50 percent",
        "unlock the front door",
        "lock the front door",
        *example_requests(home),
    ]
    for text in asked:
        handled = chat.say(text).handled
        assert handled and handled[0].turn.result is not None, text
        assert handled[0].turn.result.status == "success", (text, handled[0].turn.result)
    assert state.states["light.kitchen_light"] == "on" and state.states["lock.front_door"] == "locked"
    assert state.attributes["light.living_room_ceiling"]["brightness"] == 50
    assert example_requests(home) == [
        "turn on the kitchen light",
        "set the living room ceiling to 50 percent",
        "lock the front door",
        "set the thermostat to 21 degrees",
    ]


def test_the_area_is_checked_and_defaults_to_the_living_room() -> None:
    home = load_home()
    assert pick_area(home, None) == "Living Room"
    assert pick_area(home, "kitchen") == "Kitchen" and pick_area(home, "lounge") == "Living Room"
    with pytest.raises(ConfigError, match=r"'Attic' is not an area .*Living Room, Kitchen"):
        pick_area(home, "Attic")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("home.yaml", "areas: [unclosed", "is not valid YAML"),
        ("home.json", "{not json", "is not valid JSON"),
        ("home.yaml", "- just\n- a list\n", "must hold a mapping"),
        ("home.yaml", "entities:\n  - {name: Lamp}\n", "missing required key 'id'"),
        ("home.yaml", "entities:\n  - {id: light.x, name: X, area: attic}\n", "unknown area 'attic'"),
        ("home.yaml", "areas: []\n", "has no entities"),
    ],
)
def test_a_bad_home_file_is_one_clear_error(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as caught:
        load_home(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(ConfigError, match="cannot read home file"):
        load_home(tmp_path / "missing.yaml")


# --- the loop, fed from a list ---------------------------------------------------------------


def test_the_loop_asks_rewrites_acts_and_logs(rewriter_dir: Path, tmp_path: Path) -> None:
    with Store(tmp_path / "chat.duckdb") as store:
        session, out = _session(rewriter_dir, store)
        session.banner()
        lines = [
            "turn on the kitchen light",
            ":learned",
            KILL,
            "yes",
            KILL,
            ":state",
            ":learned",
            ":nope",
            "",
        ]
        session.run(_reader(lines, out))
        shown = out.getvalue()
        turns = store.query("SELECT text, source FROM turns ORDER BY turn_id").to_pylist()
        acts = store.dialogue_acts()
    # The banner: the home's areas and devices, what to try, :help.
    assert "Living Room (also Lounge): Living Room Ceiling, Floor Lamp, TV, Thermostat" in shown
    assert "try: turn on the kitchen light  |  set the living room ceiling to 50 percent" in shown
    assert ":help" in shown
    # A request it understands: done, no rewrite.
    did = "assistant> Turned on the light\n  did: HassTurnOn light.kitchen_light\n"
    assert f"you> turn on the kitchen light\n{did}" in shown
    assert "you> :learned\nnothing learned yet\n" in shown
    # One it does not: the rewriter's guess is a question; yes runs it, shown as a rewrite.
    assert f"you> {KILL}\nassistant> {QUESTION}\n  asked: confirm\n" in shown
    assert f"you> yes\nassistant> Turned off the light\n  question ended: yes\n  {REWROTE}\n" in shown
    # The yes taught the household's layer: the same words now act without asking.
    second = shown.split("you> yes\n", 1)[1].split(f"you> {KILL}\n", 1)[1]
    assert second.startswith(f"assistant> Turned off the light\n  {REWROTE}\n  did: HassTurnOff")
    assert "asked:" not in second.split("you> :state")[0]
    assert re.search(r"light\.kitchen_light\s+Kitchen Light\s+Kitchen\s+off\b", shown), shown
    assert re.search(r"light\.living_room_ceiling\s+Living Room Ceiling\s+Living Room\s+off\b", shown)
    assert (
        "you said yes: 'kill the lights in the kitchen' means 'turn off the lights in the kitchen'" in shown
    )
    assert "unknown command :nope (try :help)" in shown
    assert shown.rstrip().endswith("bye")
    # Every final turn and the question's act went to the store, from the chat.
    assert [t["text"] for t in turns] == [
        "turn on the kitchen light",
        "turn off the lights in the kitchen",
        "turn off the lights in the kitchen",
    ]
    assert {t["source"] for t in turns} == {"chat"}
    assert [(a["kind"], a["answer"], a["proposal"]) for a in acts] == [
        ("confirm", "yes", "turn off the lights in the kitchen")
    ]


def test_no_then_what_you_wanted_and_a_question_left_open(rewriter_dir: Path, tmp_path: Path) -> None:
    with Store(tmp_path / "chat.duckdb") as store:
        session, out = _session(rewriter_dir, store)
        session.run(_reader([KILL, "no", "turn off the kitchen light", KILL, "never mind", KILL], out))
        shown = out.getvalue()
        acts = store.dialogue_acts()
    assert "you> no\nassistant> OK. What did you want?\n  question ended: no\n  asked: clarify\n" in shown
    assert "question ended: answered\n  did: HassTurnOff light.kitchen_light" in shown
    # A no is never proposed again: the same words now fail as they would without selflearn.
    after = shown.split("you> turn off the kitchen light\n", 1)[1]
    assert QUESTION not in after and "did: nothing (error: no_entity)" in after
    # The chat ended (end of input) with no question waiting unlogged.
    assert [(a["kind"], a["answer"]) for a in acts] == [("confirm", "no"), ("clarify", "answered")]
    assert shown.rstrip().endswith("bye")


def test_ctrl_c_ends_the_chat_and_a_waiting_question_is_logged(rewriter_dir: Path, tmp_path: Path) -> None:
    with Store(tmp_path / "chat.duckdb") as store:
        session, out = _session(rewriter_dir, store)
        typed = iter([KILL])

        def read(prompt: str) -> str:
            line = next(typed, None)
            if line is None:
                raise KeyboardInterrupt
            return line

        session.run(read)
        acts = store.dialogue_acts()
        turns = store.query("SELECT text FROM turns").to_pylist()
    assert QUESTION in out.getvalue() and "question ended: timeout" in out.getvalue()
    assert out.getvalue().rstrip().endswith("bye")
    assert [(a["kind"], a["answer"]) for a in acts] == [("confirm", "timeout")]
    assert turns == [{"text": KILL}]


def test_what_was_taught_is_shown(rewriter_dir: Path) -> None:
    from selflearn.dialogue import Teaching

    session, out = _session(rewriter_dir)
    session.handle(":learned")
    assert out.getvalue() == "nothing learned yet\n"
    session.conversation.assistant.teaching = Teaching()
    session.handle("when I say study mode, turn on the bedside lamp and turn off the tv")
    session.handle(":learned")
    assert "routine: 'study mode' -> turn on the bedside lamp; turn off the tv" in out.getvalue()
    act = DialogueAct(
        act_id="t9.q",
        turn_id="t9",
        user_id="me",
        household_id="example",
        timestamp=datetime(2026, 1, 5, 8, 0, tzinfo=UTC),
        kind="teach",
        question="I don't know what study mode is. Can you teach me?",
        proposal="study mode",
        raised_by="gap",
        answer="taught",
        taught="c1",
    )
    assert describe(Exchange("turn on the bedside lamp", "OK", acts=[act])) == [
        "question ended: taught",
        "taught: 'study mode' (c1)",
    ]


# --- the command -----------------------------------------------------------------------------


def test_the_command_reads_piped_lines_and_echoes_them(rewriter_dir: Path, tmp_path: Path) -> None:
    store = tmp_path / "chat.duckdb"
    res = CliRunner().invoke(
        app,
        [
            *("chat", "--rewriter", str(rewriter_dir), "--area", "Kitchen", "--no-color"),
            *("--store", str(store)),
        ],
        input=f"{KILL}\nyes\n:quit\nturn on the kitchen light\n",
    )
    assert res.exit_code == 0, res.output
    assert "you are in the Kitchen" in res.stdout and "(confirm=guesses)" in res.stdout
    assert f"you> {KILL}\nassistant> {QUESTION}\n" in res.stdout and REWROTE in res.stdout
    assert "turn on the kitchen light\nassistant>" not in res.stdout  # :quit ended it
    assert "\x1b[" not in res.stdout
    with Store(store, read_only=True) as opened:
        assert opened.count("turns") == 1
        assert opened.query("SELECT home_id FROM homes").to_pylist() == [{"home_id": "example"}]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--area", "Attic"], "is not an area of home example"),
        (["--confirm", "sometimes"], "--confirm must be one of off, guesses, unconfirmed, all"),
    ],
)
def test_bad_options_are_config_errors(args: list[str], message: str) -> None:
    res = CliRunner().invoke(app, ["chat", *args], input="")
    assert isinstance(res.exception, ConfigError) and message in str(res.exception)


def test_a_missing_home_is_one_error_line_and_help_explains(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    proc = subprocess.run(
        [sys.executable, "-m", "selflearn", "chat", "--home", str(missing)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: cannot read home file {missing}: No such file or directory"
    res = CliRunner().invoke(app, ["chat", "--help"])
    assert res.exit_code == 0
    for words in ("Talk to the reference assistant", "Example: selflearn chat", "--rewriter", "--no-color"):
        assert words in res.stdout


def test_a_binary_home_file_is_one_error_line_not_a_traceback(tmp_path: Path) -> None:
    """Issue 53 (7): ``chat --home`` on a file that is not text printed a UnicodeDecodeError traceback."""
    for name in ("home.yaml", "home.json", "home"):
        binary = tmp_path / name
        binary.write_bytes(bytes([0x7F, 0x45, 0x4C, 0x46, 0x02, 0x01, 0x86, 0xFF, 0x00, 0xC3]) * 20)
        proc = subprocess.run(
            [sys.executable, "-m", "selflearn", "chat", "--home", str(binary)],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr + proc.stdout
        assert proc.stderr.strip() == (
            f"error: home file {binary} is not a text file (not UTF-8 at byte 6): give a YAML or JSON home"
        )


# --- the program in a terminal ---------------------------------------------------------------


class _Tmux:
    """One tmux session on a private server (its own socket), driven as a person would."""

    def __init__(self, socket: Path, name: str) -> None:
        self.base = ["tmux", "-S", str(socket)]
        self.name = name

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.base, *args], capture_output=True, text=True, check=check, timeout=10)

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-J", "-S", "-", "-t", self.name, check=False).stdout

    def type(self, text: str) -> None:
        self.run("send-keys", "-t", self.name, "-l", text)
        self.run("send-keys", "-t", self.name, "Enter")

    def alive(self) -> bool:
        return self.run("has-session", "-t", self.name, check=False).returncode == 0

    def wait_for(self, seen: Callable[[str], bool], what: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if seen(screen):
                return screen
            if time.monotonic() > deadline or not self.alive():
                pytest.fail(f"the terminal never showed {what} within {timeout:.0f} s; it shows:\n{screen}")
            time.sleep(0.1)


def _prompts(screen: str) -> int:
    return sum(1 for line in screen.splitlines() if line.startswith("you>"))


def test_a_person_chats_in_a_terminal(rewriter_dir: Path, tmp_path: Path) -> None:
    if shutil.which("tmux") is None:
        pytest.fail(
            "tmux is not installed: this test drives `selflearn chat` in a terminal (apt-get install tmux)"
        )
    command = [sys.executable, "-m", "selflearn", "chat", "--rewriter", str(rewriter_dir)]
    command += ["--area", "Kitchen", "--no-color"]
    tmux = _Tmux(tmp_path / "tmux.sock", f"chat-{uuid.uuid4().hex[:8]}")
    started = time.monotonic()
    tmux.run(
        *("new-session", "-d", "-s", tmux.name, "-x", "160", "-y", "50", "-c", str(tmp_path)),
        shlex.join(command),
    )
    try:
        screen = tmux.wait_for(lambda s: _prompts(s) == 1, "the first prompt", timeout=60)
        assert "selflearn chat -- home example, you are in the Kitchen" in screen
        assert "try: turn on the kitchen light" in screen

        tmux.type("turn on the kitchen light")
        screen = tmux.wait_for(lambda s: _prompts(s) == 2, "the answer to 'turn on the kitchen light'")
        assert "assistant> Turned on the light\n  did: HassTurnOn light.kitchen_light" in screen

        tmux.type(KILL)
        screen = tmux.wait_for(lambda s: _prompts(s) == 3, "the answer to 'kill the lights'")
        assert f"you> {KILL}\nassistant> {QUESTION}\n  asked: confirm" in screen

        tmux.type("yes")
        screen = tmux.wait_for(lambda s: _prompts(s) == 4, "the answer to 'yes'")
        assert f"you> yes\nassistant> Turned off the light\n  question ended: yes\n  {REWROTE}" in screen

        tmux.type(":state")
        screen = tmux.wait_for(lambda s: _prompts(s) == 5, "the device states")
        assert re.search(r"light\.kitchen_light\s+Kitchen Light\s+Kitchen\s+off\b", screen), screen

        tmux.type(":quit")
        deadline = time.monotonic() + 10
        while tmux.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not tmux.alive(), f"the session is still running after :quit:\n{tmux.screen()}"
        assert time.monotonic() - started < 60
    finally:
        tmux.run("kill-session", "-t", tmux.name, check=False)
        tmux.run("kill-server", check=False)  # the private server this test started


def test_a_chat_restarted_on_its_store_remembers_the_answers(rewriter_dir: Path, tmp_path: Path) -> None:
    """Yes to a guess, then quit; a new chat on the same store acts on the same words unasked,
    and never asks again about what the household declined to teach."""
    from selflearn.cli.chat import remember
    from selflearn.dialogue import TeachBudget, Teaching

    path = tmp_path / "chat.duckdb"
    with Store(path) as store:
        session, out = _session(rewriter_dir, store)
        session.conversation.assistant.teaching = Teaching(budget=TeachBudget(min_repeats=1))
        session.run(_reader([KILL, "yes", "turn on the thingy", "no"], out), echo=False)
        assert QUESTION in out.getvalue()
    with Store(path) as store:
        session, out = _session(rewriter_dir, store)
        budget = TeachBudget(min_repeats=1)
        session.conversation.assistant.teaching = Teaching(budget=budget)
        rewriter = session.conversation.assistant.rewriter
        assert isinstance(rewriter, Rewriter)
        assert remember(store, rewriter, budget, session.home) > 0
        session.run(_reader([KILL, "turn on the thingy"], out), echo=False)
    text = out.getvalue()
    assert QUESTION not in text and REWROTE in text, text
    assert "Can you teach me?" not in text, text


def test_a_restarted_chat_stores_its_own_turns(rewriter_dir: Path, tmp_path: Path) -> None:
    """A second chat on the same store counts its turns from 1 again; its turn ids must not
    collide with the first chat's, or the store refuses them as conflicts and they are lost -- a
    "forget ..." among them, which a later restart then undoes (issue 53's model found it)."""
    path = tmp_path / "chat.duckdb"
    for lines in (["turn on the kitchen light", "turn off the kitchen light"], ["turn on the kitchen light"]):
        with Store(path) as store:
            session, out = _session(rewriter_dir, store)
            session.run(_reader(lines, out), echo=False)
            assert "rejected" not in out.getvalue(), out.getvalue()
    with Store(path, read_only=True) as store:
        turns = store.query("SELECT turn_id, text FROM turns").to_pylist()
    assert len(turns) == 3 and len({t["turn_id"] for t in turns}) == 3, turns


def test_a_fresh_chat_asks_with_the_packaged_starter_and_no_starter_only_learns() -> None:
    """A new user's first ``selflearn chat`` is the product out of the box: the starter that ships
    in the package asks about a guess and acts on the yes; ``--no-starter`` runs only the
    personal layer, which has nothing to propose yet."""
    lines = "kill the lights in the kitchen\nyes\n:quit\n"
    command = [sys.executable, "-m", "selflearn", "chat", "--area", "Kitchen", "--no-color"]
    fresh = subprocess.run(command, input=lines, capture_output=True, text=True, timeout=120)
    assert fresh.returncode == 0, fresh.stderr
    assert "rewriter: the packaged starter (confirm=guesses)" in fresh.stdout
    assert "assistant> Did you mean turn off all the lights in the kitchen?" in fresh.stdout, fresh.stdout
    assert "did: HassTurnOff light.kitchen_light" in fresh.stdout, fresh.stdout
    bare = subprocess.run(
        [*command, "--no-starter"], input=lines, capture_output=True, text=True, timeout=120
    )
    assert bare.returncode == 0, bare.stderr
    assert "rewriter: personal layer only" in bare.stdout and "Did you mean" not in bare.stdout
    assert "did: HassTurnOff" not in bare.stdout
