"""`pocketkb bench crash`: the learner and store in a child process, SIGKILLed at random moments and restarted.

Every restart must load a complete state equal to one the child saved; nothing is lost beyond the last save.
"""
from __future__ import annotations

import hashlib
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

FEED = ["Yesterday Mira walked to the lake after work.", "Tobias sent the Halvorsen report on Monday.",
        "We talked about the trip to Lisbon in June.", "The cardamom buns on Calloway Street were worth it.",
        "I finished the second route at the climbing wall.", "The train was late again this morning."]


def state_hash(deltas: dict) -> str:
    digest = hashlib.sha256()
    for name in sorted(deltas):
        digest.update(name.encode())
        digest.update(deltas[name].contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def child_main(folder: str, log_path: str) -> None:
    """Learn and save in a loop, logging each state before and after it is saved, until killed."""
    import torch
    from safetensors.torch import load_file

    from app.learning.settings import LearnerConfig
    from app.typing.loading import load_predictor
    from app.session import Session, SessionConfig
    from app.storage.store import Store

    torch.set_num_threads(1)
    leftovers = len(list(Path(folder).glob(".*.tmp")))
    session = Session(load_predictor(), Store(folder), LearnerConfig(mode="sparse"),
                      SessionConfig(background=False, autosave=False))
    saved = session.store.personal_path
    loaded = state_hash(load_file(saved)) if saved.exists() else "none"
    with open(log_path, "a", buffering=1) as log:
        log.write(f"loaded {loaded} {len(session.store.history)} {leftovers}\n")
        for i in range(1 << 30):
            session.commit_sentences([f"{FEED[i % len(FEED)]} Entry {i}."])
            log.write(f"committed {len(session.store.history)}\n")
            personal = session.personal()
            log.write(f"saving {state_hash(personal.deltas)}\n")
            session.store.save(personal)
            log.write(f"saved {state_hash(personal.deltas)}\n")


@dataclass
class CrashReport:
    kills: int = 0
    during_save: int = 0
    restarts_ok: int = 0
    problems: list[str] = field(default_factory=list)
    max_leftover_temp_files: int = 0

    def lines(self) -> list[str]:
        return [f"kills {self.kills}, {self.during_save} of them during a save; restarts that loaded a saved state: "
                f"{self.restarts_ok}/{self.kills}; temp files left at a restart: at most "
                f"{self.max_leftover_temp_files} (removed on start)",
                "problems: none" if not self.problems else "problems: " + "; ".join(self.problems)]


def _events(log_path: Path) -> list[tuple[str, str]]:
    if not log_path.exists():
        return []
    out = []
    for line in log_path.read_text().splitlines():
        kind, _, value = line.partition(" ")
        out.append((kind, value))
    return out


def _start_child(folder: Path, log_path: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "app.bench.crash", "child", str(folder), str(log_path)],
                            cwd=Path(__file__).resolve().parents[2])


def _wait_for(log_path: Path, count: int, child: subprocess.Popen, timeout: float = 120.0) -> None:
    """Until the log has `count` lines beyond what it had (or the child died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and child.poll() is None:
        if len(_events(log_path)) >= count:
            return
        time.sleep(0.02)
    raise RuntimeError("the child did not start learning (see its output)")


def _wait_for_save(log_path: Path, child: subprocess.Popen, timeout: float = 30.0) -> None:
    """Until the child's last log line says a save has begun."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and child.poll() is None:
        with open(log_path, "rb") as handle:
            handle.seek(max(0, handle.seek(0, 2) - 40))
            if handle.read().rstrip(b"\n").split(b"\n")[-1].startswith(b"saving "):
                return
        time.sleep(0.0005)


def run_crash_bench(folder: Path, kills: int, seed: int = 0, progress=print) -> CrashReport:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    report = CrashReport()
    saved, in_flight, committed = "none", None, 0
    for k in range(kills + 1):
        log_path = folder / f"child-{k}.log"
        child = _start_child(folder / "data", log_path)
        _wait_for(log_path, 3, child)  # loaded, and one sentence committed
        loaded_kind, loaded = _events(log_path)[0]
        state, history, leftovers = loaded.split()
        report.max_leftover_temp_files = max(report.max_leftover_temp_files, int(leftovers))
        if k > 0:
            allowed = {saved, in_flight} - {None}
            if state in allowed and int(history) >= committed:
                report.restarts_ok += 1
            else:
                report.problems.append(f"restart {k} loaded {state} with {history} sentences; saved were "
                                       f"{sorted(allowed)} with {committed} sentences")
            saved = state  # what is on disk now: a child killed in its first save leaves this one there
        if k == kills:
            child.kill()
            child.wait()
            break
        if k % 2:
            _wait_for_save(log_path, child)  # every other kill aims at a save in progress
        else:
            time.sleep(rng.uniform(0.05, 2.0))
        child.send_signal(signal.SIGKILL)
        child.wait()
        report.kills += 1
        events = _events(log_path)
        saves = [v for kind, v in events if kind == "saved"]
        saved = saves[-1] if saves else saved
        in_flight = events[-1][1] if events[-1][0] == "saving" else None
        report.during_save += in_flight is not None
        commits = [int(v) for kind, v in events if kind == "committed"]
        committed = commits[-1] if commits else committed
        progress(f"kill {k + 1}/{kills}: {'during a save' if in_flight else 'while learning'}")
    return report


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        child_main(sys.argv[2], sys.argv[3])
