"""Federated learning on Flower: the delta codec (budget, error feedback, checks, clipping, FedAvg), a device's round,
and real SuperLink + SuperNode processes on loopback (a round, a killed node, bad deltas, the messages' contents)."""
import json
import os
import socket
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from flwr.app import ConfigRecord, RecordDict

from app.federate.client_app import local_round
from app.federate.device import METRICS, RESIDUAL_FILE, round_sentences
from app.federate.delta import COLS, ROWS, DeltaError, clip, densify, norm, select, weighted_mean
from app.federate.launcher import Federation, descendants
from app.federate.records import from_record, model_weights, to_record
from app.federate.settings import FederationSettings
from models import BASE_DIR
from models.checkpoint import load_model, weights_sha256
from models.grad_stats import GRAD_STATS_FILE, load_grad_stats

TESTS = Path(__file__).parent
SHAPES = {"wte.weight": (6, 4), "blocks.0.mlp.c_fc.weight": (5, 3), "ln_f.bias": (4,)}
TEXTS = ["I went to the market today. The apples were cheap and fresh. I bought a bag of them for my mother. "
         "She loves apple pie more than anything. Tomorrow I will bake one for her birthday.",
         "Our team won the game last night. The coach was very happy with the defense. We practice again on "
         "Monday morning. I need new shoes before then. My old ones are worn out.",
         "The rain kept falling all week. My garden is finally green again. I planted tomatoes and beans in the "
         "spring. The beans are already climbing the fence. I hope the sun comes back soon."]


def _delta(seed=0):
    rng = np.random.default_rng(seed)
    delta = {name: rng.normal(size=shape).astype(np.float32) for name, shape in SHAPES.items()}
    delta["wte.weight"][[1, 4]] = 0  # rows of tokens never seen
    return delta


def test_budget_sends_the_densest_slices_and_keeps_the_rest_for_next_round():
    delta = _delta()
    sent, kept = select(delta, budget=10)
    values = sum(v.size for k, v in sent.items() if "|" not in k)
    assert 0 < values <= 10
    assert set(sent) <= {*SHAPES, *(n + ROWS for n in SHAPES), *(n + COLS for n in SHAPES)}
    back = densify(sent, SHAPES)
    for name, value in delta.items():  # error feedback: nothing is lost, only delayed
        np.testing.assert_allclose(back.get(name, 0) + kept.get(name, 0), value, rtol=0, atol=1e-7)
    everything, nothing = select(delta, budget=None)
    assert nothing == {} and all(np.array_equal(densify(everything, SHAPES)[n], delta[n]) for n in SHAPES)
    assert set(everything["wte.weight" + ROWS]) == {0, 2, 3, 5}  # unchanged rows do not travel


def test_the_server_turns_down_malformed_deltas():
    sent, _ = select(_delta(), budget=None)
    cases = {"unknown tensor": {**sent, "secret": np.ones(3, np.float32)},
             "not finite": {**sent, "ln_f.bias": np.array([0, np.nan, 0, 0], np.float32)},
             "index out of range": {**sent, "wte.weight" + ROWS: sent["wte.weight" + ROWS] + 6},
             "repeated index": {**sent, "wte.weight" + ROWS: np.zeros(4, np.int32)},
             "wrong shape": {**sent, "ln_f.bias": np.ones(5, np.float32)},
             "wrong axis": {**sent, "wte.weight" + COLS: np.arange(4, dtype=np.int32)},
             "not floats": {**sent, "ln_f.bias": np.ones(4, np.int64)},
             "float64 (would overflow float32)": {**sent, "ln_f.bias": np.full(4, 1e300)},
             "a scalar index": {**sent, "wte.weight" + ROWS: np.int32(0)},
             "2-D indices": {**sent, "wte.weight" + ROWS: np.zeros((2, 2), np.int32)},
             "float indices": {**sent, "wte.weight" + ROWS: sent["wte.weight" + ROWS].astype(np.float32)},
             "unknown suffix": {**sent, "ln_f.bias|cols|rows": np.zeros(1, np.int32)},
             "indices without values": {"ln_f.bias" + ROWS: np.zeros(1, np.int32)}}
    for case, delta in cases.items():
        with pytest.raises(DeltaError):
            densify(delta, SHAPES)
            pytest.fail(case)


def test_a_reply_is_checked_whole_and_its_weight_capped():
    from flwr.app import Array, ArrayRecord, MetricRecord

    from app.federate.server_app import check_reply

    sent, _ = select(_delta(), budget=None)
    counts = {key: 1.0 for key in METRICS}

    def reply(delta_record, metrics):
        return RecordDict({"delta": delta_record, "metrics": MetricRecord(metrics)})

    delta, metrics = check_reply(reply(to_record(sent), {**counts, "tokens": 1e30}), SHAPES, chars=4000)
    assert metrics["tokens"] == 4000  # no device outweighs what a round can hold
    assert set(delta) == set(SHAPES)
    for bad in ({**counts, "tokens": 0.0}, {**counts, "nats-base": float("nan")}, {"tokens": 5.0}):
        with pytest.raises(DeltaError):
            check_reply(reply(to_record(sent), bad), SHAPES, chars=4000)
    with pytest.raises(DeltaError):  # arrays that do not decode are turned down too, not raised
        garbage = Array(dtype="float32", shape=(4,), stype="numpy.ndarray", data=b"not an array")
        check_reply(reply(ArrayRecord({"ln_f.bias": garbage}), counts), SHAPES, 4000)


def test_clipping_and_token_weighted_mean():
    delta = _delta()
    huge = {k: v * 1e6 for k, v in delta.items()}
    clipped, was = clip(huge, 2.0)
    assert was and norm(clipped) == pytest.approx(2.0, rel=1e-5)
    assert clip(delta, 1e9) == (delta, False)
    a, b = {"ln_f.bias": np.ones(4, np.float32)}, {"ln_f.bias": np.zeros(4, np.float32), "wpe": np.ones(2, np.float32)}
    mean = weighted_mean([a, b], [300.0, 100.0])
    np.testing.assert_allclose(mean["ln_f.bias"], 0.75)
    np.testing.assert_allclose(mean["wpe"], 0.25)  # a tensor missing from a delta counts as zero


def test_rounds_take_successive_stretches_of_the_users_text():
    text = " ".join(f"Sentence number {i} is here." for i in range(40))
    rounds = [round_sentences(text, r, 200) for r in (1, 2, 3)]
    assert all(rounds) and sum(map(len, rounds)) < 40
    assert rounds[0][0].startswith("Sentence number 0 ") and rounds[1][0] not in rounds[0]
    assert round_sentences(text, 99, 200) == []


@pytest.fixture(scope="module")
def base():
    model = load_model(BASE_DIR)
    stats = load_grad_stats(Path(BASE_DIR) / GRAD_STATS_FILE, weights_sha256(BASE_DIR))
    return model, {k: v.numpy() for k, v in stats.tensors.items()}


def _round_content(base, number=1, budget=20_000):
    model, stats = base
    config = ConfigRecord({"round": number, "mode": "sparse", "budget": budget, "chars": 4000, "max-norm": 2.0,
                           "model": json.dumps(model.config.to_dict())})
    return RecordDict({"base": to_record(model_weights(model)), "stats": to_record(stats), "config": config})


def test_a_device_round_sends_a_budgeted_delta_and_counts_only(tmp_path, base):
    (tmp_path / "text.txt").write_text(TEXTS[0])
    node = {"text": str(tmp_path / "text.txt"), "state": str(tmp_path / "state")}
    reply = local_round(_round_content(base), node)
    assert set(reply.array_records) == {"delta"} and set(reply.metric_records) == {"metrics"}
    assert not reply.config_records
    metrics = reply.metric_records["metrics"]
    assert set(metrics) == set(METRICS) and metrics["tokens"] > 20
    assert metrics["nats-personal"] > 0 and metrics["nats-base"] > 0
    delta = from_record(reply.array_records["delta"])
    shapes = {name: value.shape for name, value in model_weights(base[0]).items()}
    sent = sum(v.size for k, v in delta.items() if "|" not in k)
    assert sent == metrics["sent-values"] and 0 < sent <= 20_000
    assert norm(densify(delta, shapes)) <= 2.0 + 1e-4
    assert metrics["changed-values"] > metrics["sent-values"]  # the rest waits on the device ...
    assert (tmp_path / "state" / RESIDUAL_FILE).exists()        # ... for the next round


@pytest.fixture
def federation_env(monkeypatch):
    """The test ClientApp (tests/federation_client.py) importable by Flower's app processes."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))


def _devices(tmp_path, faults):
    devices = []
    for i, fault in enumerate(faults):
        folder = tmp_path / f"device{i}"
        folder.mkdir()
        (folder / "text.txt").write_text(TEXTS[i % len(TEXTS)])
        device = {"text": str(folder / "text.txt"), "state": str(folder / "state"),
                  "audit": str(folder / "audit.jsonl")}
        devices.append({**device, "fault": fault} if fault else device)
    return devices


def _settings(tmp_path, nodes, **overrides):
    return FederationSettings(base=str(Path(BASE_DIR).resolve()), out=str(tmp_path / "out"), rounds=1, nodes=nodes,
                              budget=20_000, max_norm=2.0, **overrides)


def test_two_supernodes_on_loopback_complete_a_round_and_send_no_text(tmp_path, federation_env, base):
    devices = _devices(tmp_path, ["", ""])
    with Federation(devices, tmp_path / "flwr", client_app="federation_client:app") as federation:
        addresses, running = set(), threading.Event()

        def watch():  # every socket the daemons and their app processes hold while the round runs
            while not running.wait(0.3):
                addresses.update(_socket_addresses(federation))
        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            rounds = federation.run(_settings(tmp_path, 2, round_timeout=120), timeout=180)["rounds"]
        finally:
            running.set()
            watcher.join()
    (entry,) = rounds
    assert entry["accepted"] == 2 and entry["applied"] and entry["dropped"] == 0  # within the 2-minute round timeout
    loopback = {"127.0.0.1", "::ffff:127.0.0.1"}
    assert addresses and all(local in loopback and remote in loopback | {"0.0.0.0"} for local, remote in addresses)
    assert not [p for p in Path("/proc").glob("[0-9]*") if _has_home(p, tmp_path / "flwr")]  # all stopped
    names = set(model_weights(base[0]))
    allowed = names | {n + ROWS for n in names} | {n + COLS for n in names}
    for device in devices:
        (message,) = [json.loads(line) for line in Path(device["audit"]).read_text().splitlines()]
        assert set(message["arrays"]) == {"delta"} and not message["configs"]
        assert set(message["metrics"]) == {"metrics"} and set(message["metrics"]["metrics"]) == set(METRICS)
        assert set(message["metrics"]["metrics"].values()) == {"float"}  # numbers only: no strings, no text
        arrays = message["arrays"]["delta"]
        assert set(arrays) <= allowed
        assert all(a["dtype"] in ("float32", "int32") for a in arrays.values())
        assert sum(a["bytes"] for a in arrays.values()) < 20_000 * 4 + 4 * 4096 + 128 * len(arrays)
    checkpoint = Path(entry["checkpoint"])
    after = load_model(checkpoint)
    assert load_grad_stats(checkpoint / GRAD_STATS_FILE, weights_sha256(checkpoint))  # loadable by the app
    assert json.loads((checkpoint / "config.json").read_text())["federated"]["round"] == 1
    moved = [n for n, p in after.named_parameters() if not np.array_equal(p.detach().numpy(),
                                                                          model_weights(base[0])[n])]
    assert moved and len(moved) < len(names)  # sparse: only what the scheme trains


def _ip(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address.split(":")[0])
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    return socket.inet_ntop(socket.AF_INET6, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))


def _has_home(proc: Path, root: Path) -> bool:
    try:
        return f"FLWR_HOME={root}".encode() in (proc / "environ").read_bytes()
    except OSError:
        return False


def _socket_addresses(federation):
    """(local, remote) addresses of every TCP socket the daemons and the processes they started hold."""
    inodes = set()
    for proc in [federation.link, *federation.nodes]:
        for pid in [proc.pid, *descendants(proc.pid)]:
            for fd in Path(f"/proc/{pid}/fd").glob("*"):
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    found = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                found.add((_ip(fields[1]), _ip(fields[2])))
    return found


def test_bad_deltas_are_rejected_and_a_huge_one_is_clipped(tmp_path, federation_env):
    devices = _devices(tmp_path, ["nan", "malformed", "huge", ""])
    with Federation(devices, tmp_path / "flwr", client_app="federation_client:app") as federation:
        (entry,) = federation.run(_settings(tmp_path, 4, round_timeout=150), timeout=240)["rounds"]
    assert entry["answered"] == 4 and entry["accepted"] == 2 and entry["applied"]
    reasons = " ".join(r["reason"] for r in entry["rejected"])
    assert len(entry["rejected"]) == 2 and "finite" in reasons and "indices" in reasons
    assert entry["clipped"] == 1
    assert max(d["norm"] for d in entry["devices"].values() if "norm" in d) <= 2.0 + 1e-4


def test_a_killed_supernode_does_not_stop_the_round(tmp_path, federation_env):
    devices = _devices(tmp_path, ["", "", "slow"])
    settings = _settings(tmp_path, 3, round_timeout=45, min_replies=2)
    with Federation(devices, tmp_path / "flwr", client_app="federation_client:app") as federation:
        def kill_when_started():
            started = Path(devices[2]["state"]) / "started"
            for _ in range(1200):
                if started.exists():
                    federation.kill_node(2)
                    return
                threading.Event().wait(0.1)
        killer = threading.Thread(target=kill_when_started)
        killer.start()
        (entry,) = federation.run(settings, timeout=240)["rounds"]
        killer.join()
    assert federation.nodes[2].returncode is not None
    assert entry["sampled"] == 3 and entry["accepted"] == 2 and entry["dropped"] == 1 and entry["applied"]


def test_with_secagg_the_server_gets_the_same_mean_as_the_plain_sum(tmp_path, federation_env, base):
    devices = _devices(tmp_path, ["", "", ""])
    Path(devices[2]["text"]).write_text(TEXTS[1] + " " + TEXTS[2])  # twice the tokens: the weights differ
    moved = {}
    for secagg in (False, True):
        run = tmp_path / f"secagg-{secagg}"
        settings = replace(_settings(run, 3, round_timeout=150, min_replies=3), secagg=secagg, chars=500)
        nodes = [{**d, "state": str(run / f"state{i}")} for i, d in enumerate(devices)]
        with Federation(nodes, run / "flwr", client_app="federation_client:app") as federation:
            (entry,) = federation.run(settings, timeout=300)["rounds"]
        assert entry["accepted"] == 3 and entry["applied"]
        after = load_model(entry["checkpoint"])
        moved[secagg] = {n: p.detach().numpy() - model_weights(base[0])[n] for n, p in after.named_parameters()}
    plain = np.concatenate([v.ravel() for v in moved[False].values()])
    secure = np.concatenate([moved[True][n].ravel() for n in moved[False]])
    assert np.linalg.norm(plain) > 0.05  # the round did move the base
    # quantisation noise lands on every entry (dense), so the norm bound is relative
    assert np.abs(secure - plain).max() < 2e-5 and np.linalg.norm(secure - plain) < 1e-2 * np.linalg.norm(plain)


def test_dp_noise_on_the_mean_has_the_configured_scale(tmp_path):
    from app.federate.server_app import Rounds

    rounds = Rounds(FederationSettings(base=str(BASE_DIR), out=str(tmp_path), dp_noise=1.0, max_norm=2.0))
    before = {name: value.copy() for name, value in rounds.weights.items()}
    zero = {"wte.weight": np.zeros_like(before["wte.weight"])}
    assert not rounds.apply({"wte.weight": np.full_like(before["wte.weight"], np.nan)}, largest_share=0.25)
    assert all(np.array_equal(rounds.weights[n], before[n]) for n in before)  # a non-finite mean changes nothing
    assert rounds.apply(zero, largest_share=0.25)
    noise = rounds.weights["wte.weight"] - before["wte.weight"]
    # noise multiplier x clipping norm x the largest weight share: one device's most influence on the mean
    assert noise.std() == pytest.approx(1.0 * 2.0 * 0.25, rel=0.02)
    assert all(np.array_equal(rounds.weights[n], before[n]) for n in before if n != "wte.weight")
    rounds.apply(zero, largest_share=0.25)
    again = rounds.weights["wte.weight"] - before["wte.weight"] - noise
    assert not np.allclose(again, noise)  # fresh entropy each time: nobody can regenerate and subtract it


def test_the_report_gives_bytes_per_client_rounds_and_drops():
    from app.bench.federation import FederationRun

    def entry(number, sizes, dropped=0, secagg=False):
        return {"round": number, "applied": True, "dropped": dropped, "rejected": [], "clipped": 0, "accepted": 2,
                "devices": {} if secagg else {str(i): {"bytes": b} for i, b in enumerate(sizes)},
                "nats_base": None if secagg else 3.9}

    sparse = FederationRun("sparse", [entry(1, [100, 300]), entry(2, [200], dropped=1)], 10.0)
    assert sparse.mean_upload() == 200
    line = sparse.line(2)
    assert "2 of 2 rounds completed, 1 client answers dropped" in line and "200 bytes (max 300)" in line
    assert "uploads unseen" in FederationRun("sparse", [entry(1, [], secagg=True)], 5.0).line(2)


def test_the_reports_json_names_folders_relative_to_the_working_directory(tmp_path, monkeypatch):
    from app.bench.federation import FederationReport, FederationRun, Scored
    from app.bench.learning import LearningResult

    monkeypatch.chdir(tmp_path)
    users = [LearningResult("u1", "sparse", 100, 3.9, 3.8, 3.9, 3.8, 0, 0, 10, 1.0)]
    round_one = {"round": 1, "applied": True, "dropped": 0, "rejected": [], "clipped": 0, "accepted": 1,
                 "devices": {"0": {"bytes": 10}}, "nats_base": 3.9, "checkpoint": str(tmp_path / "server" / "round-1")}
    scored = [Scored(label, str(tmp_path / folder), users) for label, folder in (("shipped", "base"), ("r1", "x"))]
    data = FederationReport([FederationRun("sparse", [round_one], 1.0)], scored[0], [scored[1]], None, 1).to_dict()
    assert data["runs"][0]["rounds"][0]["checkpoint"] == "server/round-1"
    assert {s["folder"] for s in data["scores"].values()} == {"base", "x"}
    assert str(tmp_path) not in json.dumps(data)
