"""Small models the engine tests share (a tiny GPT, an MLP, a CNN), and checks that staging them keeps their forward.

Other engine test modules import the builders from here.
"""
import copy

import torch
import torch.nn as nn

from models.gpt_stages import staged_lm
from engine.scheme import PartRule, UpdateScheme
from engine.staged import sequential_model
from models.gpt import GPT, GPTConfig
from models import MODELS_DIR

TINY = GPTConfig(vocab_size=128, block_size=32, n_layer=4, n_head=2, n_embd=32)  # as deep as the shipped model: its searched scheme names blocks from the end


def shipped_scheme(name: str) -> UpdateScheme:
    """A scheme as the model ships it in models/schemes (what an update mode of that name trains)."""
    return UpdateScheme.from_json((MODELS_DIR / "schemes" / f"{name}.json").read_text())


SHIPPED_SPARSE = shipped_scheme("sparse")
MODE_SCHEMES = {name: shipped_scheme(name) for name in ("full", "last-block", "bias-only", "lora")}  # beside sparse
# Split channels of the last block's MLP, loss on the newest quarter: the engine's mechanics (split weights, int8,
# the prefix cache below a cut that nothing ties to) are tested on this.
CHANNELS_SPARSE = UpdateScheme("channels-sparse", (
    PartRule(("mlp.c_fc", "mlp.c_proj"), blocks="-1", weight=0.25),
), loss_last_fraction=0.25)

# A sparse scheme that reaches below the last block: partial channels in two blocks, biases of the last two.
DEEP_SPARSE = UpdateScheme("deep-sparse", (
    PartRule(("mlp.c_fc",), blocks="-1", weight=0.25),
    PartRule(("attn.c_proj",), blocks="-2", weight=0.5),
    PartRule(blocks="-2:", bias=True),
    PartRule(("ln_f",), bias=True),
), loss_last_fraction=0.25)

ALL_SCHEMES = [*MODE_SCHEMES.values(), SHIPPED_SPARSE, CHANNELS_SPARSE, DEEP_SPARSE]


def tiny_gpt(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    model = GPT(TINY)
    with torch.no_grad():  # nonzero biases and norms, so every path carries signal
        for name, p in model.named_parameters():
            if name.endswith("bias") or ".ln" in name or name.startswith("ln"):
                p.add_(0.1 * torch.randn_like(p))
    return model


def token_batch(rows: int = 4, length: int = 17, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, TINY.vocab_size, (rows, length), generator=torch.Generator().manual_seed(seed))


def mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 32), nn.LayerNorm(32), nn.GELU(),
                         nn.Linear(32, 5))


def cnn(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 4))


def vector_batch(shape: tuple, classes: int, rows: int = 6, seed: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(rows, *shape, generator=generator), torch.randint(0, classes, (rows,), generator=generator)


def test_staged_lm_runs_like_the_model():
    model = tiny_gpt()
    idx = token_batch()[:, :-1]
    with torch.no_grad():
        assert torch.equal(staged_lm(model).forward(idx), model(idx))


def test_sequential_staging_runs_like_the_module():
    for model, shape in ((mlp(), (12,)), (cnn(), (3, 6, 6))):
        x, _ = vector_batch(shape, 4)
        with torch.no_grad():
            assert torch.equal(sequential_model(copy.deepcopy(model)).forward(x), model(x))
