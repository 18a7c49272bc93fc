"""Pretraining of the base model: seeded, checkpointed every few minutes, resumable, with a held-out evaluation.

Samples random windows from tokenised corpora mixed by weight; the learning rate follows a cosine to `total_tokens`,
then, if asked, a cooldown to `final_lr` over `cooldown_tokens` more.
"""
from __future__ import annotations

import math
import signal
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from models.build import token_cache
from models.build.grow import grow_depth
from models.checkpoint import CONFIG_FILE, load_model, save_model
from models.gpt import GPT, GPTConfig
from models.build.progress import advance_to, progress
from models.safe_io import load_tensors, read_json, save_tensors, write_json
from models.tokenizer import Tokenizer

STATE_FILE = "pretrain_state.json"
OPTIMIZER_FILE = "optimizer.safetensors"


@dataclass
class PretrainConfig:
    corpora: list[str]
    weights: list[float] | None     # sampling share per corpus; None: a resumed run's own, else equal
    out_dir: str
    tokenizer: str
    minutes: float = 60.0
    max_steps: int | None = None    # stop after this many steps in this run (None: only time and tokens)
    total_tokens: int = 40_000_000
    batch_size: int = 16
    lr: float = 1.5e-3
    min_lr: float = 1e-4
    cooldown_tokens: int = 0        # after the cosine, the rate falls from min_lr to final_lr over this many tokens
    final_lr: float = 0.0
    warmup_tokens: int = 500_000
    rewarm_steps: int = 200         # fresh Adam moments on resume (state not kept): ramp the lr up again
    weight_decay: float = 0.1
    checkpoint_minutes: float = 5.0
    eval_windows: int = 256
    seed: int = 1234
    threads: int = 2
    cache_dir: str = "runs/tokens"
    model: dict = field(default_factory=lambda: GPTConfig().to_dict())
    grow_from: str | None = None    # a new run starts from this trained checkpoint grown to model["n_layer"] blocks


def end_tokens(cfg: PretrainConfig) -> int:
    """Where training stops: the cosine's end plus the cooldown."""
    return cfg.total_tokens + cfg.cooldown_tokens


def learning_rate(cfg: PretrainConfig, tokens: int) -> float:
    """Linear warm-up, a cosine from lr to min_lr at total_tokens, then the 1 - sqrt cooldown to final_lr
    (Hägele et al. 2024, "Scaling Laws and Compute-Optimal Training Beyond Fixed Training Durations")."""
    if cfg.cooldown_tokens and tokens >= cfg.total_tokens:
        done = min(1.0, (tokens - cfg.total_tokens) / cfg.cooldown_tokens)
        return cfg.final_lr + (cfg.min_lr - cfg.final_lr) * (1 - math.sqrt(done))
    if tokens < cfg.warmup_tokens:
        return cfg.lr * max(tokens, 1) / cfg.warmup_tokens
    progress = min(1.0, (tokens - cfg.warmup_tokens) / max(1, cfg.total_tokens - cfg.warmup_tokens))
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))


def _optimizer(model: GPT, cfg: PretrainConfig) -> torch.optim.AdamW:
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8)


def _optimizer_tensors(opt: torch.optim.AdamW, model: GPT) -> dict[str, torch.Tensor]:
    names = {id(p): n for n, p in model.named_parameters()}
    out = {}
    for p, st in opt.state.items():
        for key in ("exp_avg", "exp_avg_sq"):
            out[f"{names[id(p)]}.{key}"] = st[key]
        out[f"{names[id(p)]}.step"] = st["step"].reshape(1).float()
    return out


def _load_optimizer(opt: torch.optim.AdamW, model: GPT, tensors: dict[str, torch.Tensor]) -> None:
    for name, p in model.named_parameters():
        if f"{name}.exp_avg" in tensors:
            opt.state[p] = {"exp_avg": tensors[f"{name}.exp_avg"].clone(),
                            "exp_avg_sq": tensors[f"{name}.exp_avg_sq"].clone(),
                            "step": tensors[f"{name}.step"].reshape(()).clone()}


class WindowSampler:
    """Random (T+1)-token windows, the corpus of each drawn by weight; reproducible from (seed, step)."""

    def __init__(self, arrays: list[np.ndarray], weights: list[float], block: int, seed: int):
        self.arrays, self.block, self.seed = arrays, block, seed
        w = np.asarray(weights, dtype=np.float64)
        self.probs = w / w.sum()

    def batch(self, step: int, size: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, step])
        sources = rng.choice(len(self.arrays), size=size, p=self.probs)
        rows = []
        for s in sources:
            array = self.arrays[s]
            start = int(rng.integers(0, len(array) - self.block - 1))
            rows.append(np.asarray(array[start:start + self.block + 1], dtype=np.int64))
        return torch.from_numpy(np.stack(rows))


@torch.no_grad()
def evaluate(model: GPT, arrays: list[np.ndarray], block: int, windows: int, chars_per_token: list[float]
             ) -> dict[str, float]:
    """Held-out loss per corpus, on fixed non-overlapping windows: nats/token, perplexity, bits/char."""
    model.eval()
    result = {}
    for i, array in enumerate(arrays):
        n = min(windows, (len(array) - 1) // block)
        if n <= 0:
            continue
        starts = np.linspace(0, len(array) - block - 1, n).astype(np.int64)
        losses = []
        for chunk in np.array_split(starts, max(1, n // 32)):
            x = torch.from_numpy(np.stack([np.asarray(array[s:s + block + 1], dtype=np.int64) for s in chunk]))
            logits = model(x[:, :-1])
            losses.append(F.cross_entropy(logits.flatten(0, 1), x[:, 1:].flatten(), reduction="sum").item()
                          / x[:, 1:].numel() * len(chunk))
        loss = sum(losses) / n
        result[f"corpus{i}_loss"] = loss
        result[f"corpus{i}_ppl"] = math.exp(loss)
        result[f"corpus{i}_bpc"] = loss / math.log(2) / chars_per_token[i]
    model.train()
    return result


def _train_step(model: GPT, opt: torch.optim.AdamW, sampler: WindowSampler, cfg: PretrainConfig,
                state: dict, tokens_per_step: int, ramp: float) -> None:
    t0 = time.monotonic()
    state["lr"] = learning_rate(cfg, state["tokens"]) * ramp
    for group in opt.param_groups:
        group["lr"] = state["lr"]
    batch = sampler.batch(state["step"], cfg.batch_size)
    loss = model.loss(batch[:, :-1], batch[:, 1:])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    state["step"] += 1
    state["tokens"] += tokens_per_step
    state["seconds"] += time.monotonic() - t0
    state["train_loss"] = loss.item()


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def pretrain(cfg: PretrainConfig) -> dict:
    """Run (or resume) pretraining; SIGTERM or SIGINT (which a background job ignores) end it with a checkpoint
    and the held-out evaluation."""
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return _pretrain(cfg)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def corpus_weights(cfg: PretrainConfig, state: dict | None) -> list[float]:
    """The mixture to sample: as given; else, when resuming on the same corpora, the checkpoint's (a resume
    without weights must not silently change what the model trains on); else equal shares."""
    if cfg.weights is not None:
        return list(cfg.weights)
    before = (state or {}).get("config", {})
    if before.get("corpora") == list(cfg.corpora) and before.get("weights"):
        return list(before["weights"])
    return [1.0] * len(cfg.corpora)


def _pretrain(cfg: PretrainConfig) -> dict:
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out_dir)
    tokenizer = Tokenizer(Path(cfg.tokenizer))
    splits = [token_cache.build(tokenizer, path, cfg.cache_dir) for path in cfg.corpora]
    state = read_json(out / STATE_FILE) if (out / STATE_FILE).exists() else None
    cfg = replace(cfg, weights=corpus_weights(cfg, state))
    if state is not None:
        model = load_model(out)
        print(f"resuming at {state['tokens']:,} tokens ({state['step']} steps), corpus weights {cfg.weights}")
    elif cfg.grow_from:
        source = load_model(cfg.grow_from)
        model = grow_depth(source, cfg.model["n_layer"])
        seen = read_json(Path(cfg.grow_from) / CONFIG_FILE).get("tokens_seen", 0)
        print(f"grown from {cfg.grow_from} ({source.config.n_layer} blocks, {seen:,} tokens seen) "
              f"to {model.config.n_layer} blocks")
        state = {"step": 0, "tokens": 0, "seconds": 0.0, "evals": [],
                 "grown_from": {"folder": str(cfg.grow_from), "blocks": source.config.n_layer, "tokens_seen": seen}}
    else:
        model = GPT(GPTConfig.from_dict({**cfg.model, "vocab_size": tokenizer.vocab_size}))
        state = {"step": 0, "tokens": 0, "seconds": 0.0, "evals": []}
    gcfg = model.config
    opt = _optimizer(model, cfg)
    rewarm = 0
    if (out / OPTIMIZER_FILE).exists() and state["step"] > 0:
        _load_optimizer(opt, model, load_tensors(out / OPTIMIZER_FILE))
    elif state["step"] > 0:
        rewarm = cfg.rewarm_steps
        print(f"no optimizer state: the learning rate ramps up again over {rewarm} steps")
    sampler = WindowSampler([s.train for s in splits], cfg.weights, gcfg.block_size, cfg.seed)
    tokens_per_step = cfg.batch_size * gcfg.block_size
    print(f"model {model.num_params():,} parameters, {tokens_per_step} tokens/step, "
          f"target {end_tokens(cfg):,} tokens")

    def checkpoint() -> None:
        save_model(model, out, tokenizer, extra={"tokens_seen": state["tokens"]})
        save_tensors(out / OPTIMIZER_FILE, _optimizer_tensors(opt, model))
        write_json(out / STATE_FILE, {**state, "config": asdict(cfg)})

    deadline = time.monotonic() + cfg.minutes * 60
    last_ckpt = time.monotonic()
    bar = progress(end_tokens(cfg), "pretrain", "tok", initial=state["tokens"])
    model.train()
    ema_loss, window_start, window_tokens = None, time.monotonic(), 0
    steps_left = cfg.max_steps if cfg.max_steps is not None else float("inf")
    run_steps = 0
    try:
        while time.monotonic() < deadline and state["tokens"] < end_tokens(cfg) and steps_left > 0:
            steps_left -= 1
            run_steps += 1
            ramp = min(1.0, run_steps / rewarm) if rewarm else 1.0
            _train_step(model, opt, sampler, cfg, state, tokens_per_step, ramp)
            ema_loss = state["train_loss"] if ema_loss is None else 0.98 * ema_loss + 0.02 * state["train_loss"]
            window_tokens += tokens_per_step
            rate = window_tokens / max(1e-9, time.monotonic() - window_start)
            advance_to(bar, state["tokens"], f"loss {ema_loss:.3f} lr {state['lr']:.2e} {rate:,.0f} tok/s")
            if time.monotonic() - last_ckpt > cfg.checkpoint_minutes * 60:
                checkpoint()
                last_ckpt = time.monotonic()
                window_start, window_tokens = time.monotonic(), 0
    except KeyboardInterrupt:
        print("\ninterrupted: saving a checkpoint")
    bar.close()
    result = evaluate(model, [s.heldout for s in splits], gcfg.block_size, cfg.eval_windows,
                      [s.chars_per_token for s in splits])
    result.update(tokens=state["tokens"], step=state["step"], train_seconds=round(state["seconds"], 1),
                  train_loss=ema_loss)
    state["evals"].append(result)
    checkpoint()
    for i, path in enumerate(cfg.corpora):
        if f"corpus{i}_loss" in result:
            print(f"held-out {Path(path).name}: loss {result[f'corpus{i}_loss']:.3f} "
                  f"ppl {result[f'corpus{i}_ppl']:.1f} bits/char {result[f'corpus{i}_bpc']:.3f}")
    print(f"tokens seen {state['tokens']:,}, training time {state['seconds'] / 3600:.2f} h")
    return result
