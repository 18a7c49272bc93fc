"""`pocketkb federate`: a federation on this machine's loopback, measured. Dev users become devices (their text
written into each device's own folder), the shared base learns from them for some rounds, a comparison run with
another update mode shows what sparse uploads save, and every round's base is scored on held-out users.

The score is prequential nats/token with the product's learner running on top (`bench learning`), paired against
the shipped base with a bootstrap interval.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

from app.bench.learning import LearningResult, run_learning
from app.bench.paired import PairedGain, paired_gain
from app.bench.plot import curve_svg
from app.bench.texts import EvalText
from app.federate.launcher import Federation
from app.federate.settings import FederationSettings
from models.build.corpus import read_users


@dataclass
class FederationRun:
    mode: str
    rounds: list[dict]   # the server's progress file: one entry per round
    seconds: float

    def upload_bytes(self) -> list[int]:
        """Bytes each device's delta took in its reply, for every (round, device) that answered."""
        return [d["bytes"] for r in self.rounds for d in r["devices"].values()]

    def mean_upload(self) -> float:
        sizes = self.upload_bytes()
        return sum(sizes) / max(len(sizes), 1)

    def line(self, clients: int) -> str:
        done = sum(r["applied"] for r in self.rounds)
        dropped = sum(r["dropped"] for r in self.rounds)
        rejected = sum(len(r["rejected"]) for r in self.rounds)
        clipped = sum(r["clipped"] for r in self.rounds)
        upload = (f"upload per client per round {self.mean_upload():,.0f} bytes (max {max(self.upload_bytes()):,})"
                  if self.upload_bytes() else "uploads unseen (SecAgg+: dense, masked)")
        return (f"{self.mode}: {clients} clients, {done} of {len(self.rounds)} rounds completed, {dropped} client "
                f"answers dropped, {rejected} deltas rejected, {clipped} clipped; {upload}; {self.seconds:.0f} s")


def write_devices(users_file: str, skip: int, clients: int, chars: int, root: Path) -> list[dict]:
    """Users `skip`+1 .. `skip`+`clients` of the users file as devices: each one's first `chars` characters of
    posts, in date order, in its own folder (the node config names the text and the device's state folder)."""
    devices = []
    for i, user in enumerate(read_users(users_file, limit=skip + clients)):
        if i < skip:
            continue
        folder = root / f"device-{i + 1}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "text.txt").write_text("\n".join(user.posts)[:chars], encoding="utf-8")
        devices.append({"text": str(folder / "text.txt"), "state": str(folder / "state")})
    if len(devices) < clients:
        raise ValueError(f"{users_file} has only {skip + len(devices)} users, not {skip + clients}")
    return devices


def federate(settings: FederationSettings, devices: list[dict], root: Path, timeout: float) -> FederationRun:
    """One federation: the daemons up, the run to its end, the daemons down (each run's devices keep their own
    state)."""
    start = time.time()
    nodes = [{**device, "state": f"{device['state']}-{settings.mode}"} for device in devices]
    for node in nodes:  # what an earlier run's budget kept back belongs to that run
        shutil.rmtree(node["state"], ignore_errors=True)
    with Federation(nodes, root / f"flwr-{settings.mode}") as federation:
        rounds = federation.run(settings, timeout)["rounds"]
    return FederationRun(settings.mode, rounds, time.time() - start)


@dataclass
class Scored:
    """Held-out users' prequential scores with one base: `results` in user order."""
    label: str
    folder: str
    results: list[LearningResult]

    def personal(self) -> float:
        return sum(r.personal for r in self.results) / len(self.results)


def score(label: str, folder: str, texts: list[EvalText], processes: int,
          progress: Callable[[LearningResult], None]) -> Scored:
    return Scored(label, folder, run_learning(folder, texts, ["sparse"], {}, processes, progress))


def against(reference: Scored, other: Scored, which: str = "personal") -> PairedGain:
    """How much lower `other`'s nats/token are than `reference`'s, paired over users (positive: lower)."""
    return paired_gain([getattr(a, which) - getattr(b, which) for a, b in zip(reference.results, other.results)])


@dataclass
class FederationReport:
    runs: list[FederationRun]
    shipped: Scored
    per_round: list[Scored]     # the first run's base after each round
    compared: Scored | None     # the comparison run's final base
    clients: int

    def lines(self) -> list[str]:
        first = self.runs[0]
        lines = [run.line(self.clients) for run in self.runs]
        if len(self.runs) > 1 and first.mean_upload():
            other = self.runs[1]
            lines.append(f"{first.mode} uploads {other.mean_upload() / first.mean_upload():.1f}x fewer bytes per "
                         f"client per round than {other.mode}")
        lines.append(f"round 0 (shipped base): held-out users' prequential nats/token {self.shipped.personal():.4f}")
        for entry, scored in zip(first.rounds, self.per_round):
            seen = ("not seen (SecAgg+)" if entry["nats_base"] is None else "none accepted" if not entry["accepted"]
                    else f"{entry['nats_base']:.4f} nats/token with the base they were sent")
            lines.append(f"round {entry['round']}: {entry['accepted']} deltas averaged, clients' new text {seen}; "
                         f"held-out users' prequential nats/token {scored.personal():.4f}")
        users = len(self.shipped.results)
        for scored in [self.per_round[-1], self.compared]:
            if scored is None:
                continue
            lines.append(f"{scored.label} against the shipped base, {users} held-out users, prequential: "
                         f"{against(self.shipped, scored).line('nats/token lower')}")
            lines.append(f"{scored.label} against the shipped base, {users} held-out users, base alone: "
                         f"{against(self.shipped, scored, 'base').line('nats/token lower')}")
        return lines

    def to_dict(self) -> dict:
        """Everything measured; folders relative to the working directory (no path of the measuring machine)."""
        runs = [asdict(run) | {"mean_upload_bytes": run.mean_upload()} for run in self.runs]
        for run in runs:
            run["rounds"] = [entry | {"checkpoint": os.path.relpath(entry["checkpoint"])} if "checkpoint" in entry
                             else entry for entry in run["rounds"]]
        return {"lines": self.lines(), "clients": self.clients, "runs": runs,
                "scores": {s.label: {"folder": os.path.relpath(s.folder), "users": [r.to_dict() for r in s.results]}
                           for s in [self.shipped, *self.per_round, *([self.compared] if self.compared else [])]}}

    def plot(self) -> str:
        series = {"held-out users, prequential": [self.shipped.personal(), *(s.personal() for s in self.per_round)],
                  "held-out users, base alone": [sum(r.base for r in s.results) / len(s.results)
                                                 for s in [self.shipped, *self.per_round]]}
        return curve_svg(series, f"Federated {self.runs[0].mode} rounds: nats/token on held-out users",
                         "round (0: the shipped base)", "nats/token", [str(i) for i in range(len(self.per_round) + 1)],
                         pad=0.005, digits=3)


def run_federation(settings: FederationSettings, compare: FederationSettings | None, devices: list[dict],
                   texts: list[EvalText], root: Path, processes: int, timeout: float,
                   say: Callable[[str], None]) -> FederationReport:
    """The federation run, then the comparison run if any, then the held-out scores of every round's base."""
    runs = []
    for run_settings in [settings, *([compare] if compare else [])]:
        run = federate(run_settings, devices, root, timeout)
        say(run.line(len(devices)))
        runs.append(run)
    quiet = (lambda result: None)
    shipped = score("shipped base", settings.base, texts, processes, quiet)
    say(f"shipped base: held-out users' prequential nats/token {shipped.personal():.4f}")
    per_round = []
    for entry in runs[0].rounds:
        per_round.append(score(f"{settings.mode} base after round {entry['round']}", entry["checkpoint"], texts,
                               processes, quiet))
        say(f"round {entry['round']}: held-out users' prequential nats/token {per_round[-1].personal():.4f}")
    compared = None
    if compare and runs[1].rounds:
        last = runs[1].rounds[-1]
        compared = score(f"{compare.mode} base after round {last['round']}", last["checkpoint"], texts, processes,
                         quiet)
    return FederationReport(runs, shipped, per_round, compared, len(devices))


def comparison(settings: FederationSettings, mode: str, rounds: int) -> FederationSettings:
    """The same federation with another update mode (uploading all it changes), into its own folder."""
    return replace(settings, mode=mode, rounds=rounds, budget=0, out=f"{settings.out}-{mode}")


def write_report(report: FederationReport, docs: Path) -> list[Path]:
    docs.mkdir(parents=True, exist_ok=True)
    paths = [docs / "federate.json", docs / "federate_nats.svg"]
    paths[0].write_text(json.dumps(report.to_dict(), indent=2))
    paths[1].write_text(report.plot())
    return paths
