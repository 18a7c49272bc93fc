"""`pocketkb eval`: keystroke savings, next-word accuracy and perplexity of our predictor, side by side with Presage.

Texts are simulated in parallel worker processes; results print as a table and are written as JSON.
"""
from __future__ import annotations

import math
import multiprocessing as mp
from pathlib import Path
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from app.bench.ksr import KsrResult, simulate
from app.bench.texts import EvalText
from app.typing.loading import load_predictor
from app.typing.combiner import MixConfig
from app.typing.predictor_config import PredictorConfig
from app.typing.words import KnownWords
from engine.quant import round_frozen_linears_to_int8
from models import PRIOR_PATH
from models.build.progress import advance_to, progress
from models.gpt import GPT
from models.tokenizer import BOS_ID, Tokenizer

_WORKER: dict = {}


@dataclass
class SystemResult:
    name: str
    per_text: list[KsrResult] = field(default_factory=list)

    @property
    def total(self) -> KsrResult:
        total = KsrResult()
        for r in self.per_text:
            total.add(r)
        return total

    def to_dict(self) -> dict:
        return {"system": self.name, **self.total.to_dict(),
                "per_text_ksr": [round(r.ksr, 2) for r in self.per_text]}


def _init_worker(model_dir: str, prior_path: str, mix: MixConfig, int8: bool, keystrokes) -> None:
    torch.set_num_threads(1)
    _WORKER["keystrokes"] = keystrokes  # shared with the parent, which shows it as progress
    config = PredictorConfig(mix=mix)
    _WORKER["predictor"] = load_predictor(model_dir, config=config, prior_path=prior_path)
    _WORKER["known"] = KnownWords(frozenset(_WORKER["predictor"].index.words))  # the shipped vocabulary
    if int8:
        round_frozen_linears_to_int8(_WORKER["predictor"].model)


def _simulate_worker(job: tuple[str, tuple[int, int]]) -> KsrResult:
    text, span = job
    predictor, keystrokes = _WORKER["predictor"], _WORKER["keystrokes"]
    predictor.invalidate()
    predictor.load_mixture({})  # each text is a new user's: the mixture weights start unadapted

    def suggest(before: str) -> list[str]:
        with keystrokes.get_lock():
            keystrokes.value += 1
        return predictor.strip(before).shown
    return simulate(text, suggest, span, known=_WORKER["known"])


def _spans(text: str, parts: int) -> list[tuple[int, int]]:
    cuts = [0] + [text.find(" ", len(text) * i // parts) for i in range(1, parts)] + [len(text)]
    cuts = [c if c >= 0 else len(text) for c in cuts]
    return [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a]


def run_predictor(texts: list[EvalText], model_dir: str, processes: int, mix: MixConfig, int8: bool = False,
                  prior_path: str | Path = PRIOR_PATH,
                  desc: str = "eval") -> list[KsrResult]:
    """KSR of our predictor on each text, frozen (no learning), its sources mixed as `mix` says, spread over
    `processes` workers, with a progress bar of the keystrokes typed.

    `int8`: Linear weights rounded as the engine's int8 option holds frozen ones.

    A text is cut into parts when there are fewer texts than workers. Each part's words are typed after all the text
    before them, but the model window's cut is kept while a text grows, so how texts are cut can move the figures by
    a few hundredths: the cut depends on the texts and the workers alone.
    """
    parts = max(1, -(-processes // len(texts))) if texts else 1
    jobs, owner = [], []
    for i, item in enumerate(texts):
        for span in _spans(item.text, parts):
            jobs.append((item.text, span))
            owner.append(i)
    ctx = mp.get_context("spawn")
    keystrokes = ctx.Value("q", 0)
    total = sum(b - a for _, (a, b) in jobs)  # about a keystroke a character
    with ctx.Pool(processes, initializer=_init_worker, initargs=(model_dir, str(prior_path), mix, int8, keystrokes)) as pool, \
            progress(total, desc, "key") as bar:
        running = pool.map_async(_simulate_worker, jobs, chunksize=1)
        while not running.ready():
            running.wait(1.0)
            advance_to(bar, min(keystrokes.value, total))
        advance_to(bar, total)
        pieces = running.get()
    results = [KsrResult() for _ in texts]
    for i, piece in zip(owner, pieces):
        results[i].add(piece)
    return results


@torch.no_grad()
def perplexity(model: GPT, tokenizer: Tokenizer, texts: list[EvalText]) -> dict[str, float]:
    """Per-token perplexity and bits per character of the model on the texts, in non-overlapping windows."""
    nats, count, chars = 0.0, 0, 0
    block = model.config.block_size
    for item in texts:
        ids = [BOS_ID] + tokenizer.encode(" ".join(item.text.split()))
        chars += len(item.text)
        for start in range(0, len(ids) - 1, block):
            x = torch.tensor([ids[start:start + block + 1]])
            logits = model(x[:, :-1])
            nats += F.cross_entropy(logits[0], x[0, 1:], reduction="sum").item()
            count += x.shape[1] - 1
    return {"perplexity": math.exp(nats / max(count, 1)), "bits_per_char": nats / math.log(2) / max(chars, 1)}


def format_table(rows: list[dict], title: str) -> str:
    """One line per system: KSR, next-word accuracy, the share of suggestions that are no known word, and the share
    of known words typed whole that the strip then offered as typed."""
    lines = [title, f"{'system':<40} {'KSR %':>7} {'top-1 %':>8} {'top-3 %':>8} {'words':>7} {'non-word %':>10} "
                    f"{'typed offered %':>15}"]
    for r in rows:
        lines.append(f"{r['system']:<40} {r['ksr']:>7.2f} {r['top1']:>8.2f} {r['top3']:>8.2f} {r['words']:>7} "
                     f"{r['non_words']:>10.2f} {r['typed_offered']:>15.2f}")
    return "\n".join(lines)
