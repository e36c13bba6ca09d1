"""Single-Shot Meta-Pruning's scorer: a small CNN that reads each head's attention maps.

`HeadPruner` is the pruner of Zhang et al. (AI Open 2021; thunlp/SMP ``pruner/pruner.py``,
``HeadPruner``): a DCGAN-discriminator-style CNN over one head's attention map for one example,
``[1, 128, 128]``, with five stride-2 4x4 bias-free convolutions of widths ndf..16 ndf
(LeakyReLU 0.2 after each, BatchNorm after all but the first), then a 4x4 valid convolution to
2 channels and ``2 * sigmoid``. Channel 0 scores sentence-pair tasks, channel 1 single-sentence
tasks. `head_scores` averages a head's score over a task's (unlabelled) inputs. Needs eager
attention: the maps come from ``output_attentions=True``.

Maps of other lengths than 128 are padded with zeros or cropped (OUR CHOICE: the authors' code
requires 128 tokens); rows of padded query positions are zeroed as in the authors' code.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import safetensors.torch
import torch
import torch.nn.functional as F
from torch import nn

from prunekit.device import module_device
from prunekit.errors import ModelLoadError
from prunekit.models.surgery import current_plan
from prunekit.scoring.maps import attention_maps

__all__ = [
    "MAP_SIZE",
    "PAIR",
    "SINGLE",
    "HeadPruner",
    "fit_maps",
    "map_scores",
    "head_scores",
    "save_pruner",
    "load_pruner",
    "BUILTIN_PRUNER",
    "resolve_pruner",
    "pruner_provenance",
]

MAP_SIZE = 128
PAIR, SINGLE = 0, 1  # score channels: sentence-pair tasks, single-sentence tasks
_WEIGHTS, _CONFIG = "pruner.safetensors", "pruner.json"
BUILTIN_PRUNER = "builtin"  # the pruner shipped in the package, meta-trained on the default MiniLM
_SHIPPED = Path(__file__).resolve().parents[1] / "assets" / "smp_minilm"


class HeadPruner(nn.Module):
    """Attention maps ``[N, 1, 128, 128]`` -> scores ``[N, 2]`` in (0, 2)."""

    def __init__(self, ndf: int = 8) -> None:
        super().__init__()
        self.ndf = ndf
        layers: list[nn.Module] = [nn.Conv2d(1, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2)]
        width = ndf
        for _ in range(4):  # 64 -> 32 -> 16 -> 8 -> 4
            layers += [
                nn.Conv2d(width, 2 * width, 4, 2, 1, bias=False),
                nn.BatchNorm2d(2 * width),
                nn.LeakyReLU(0.2),
            ]
            width *= 2
        layers.append(nn.Conv2d(width, 2, 4, 1, 0, bias=False))
        self.net = nn.Sequential(*layers)
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """The authors' initialisation: conv ~ N(0, 0.01), BatchNorm gamma ~ N(1, 0.01), beta 0."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, 0.0, 0.01, generator=generator)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.normal_(module.weight, 1.0, 0.01, generator=generator)
                nn.init.zeros_(module.bias)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return 2 * torch.sigmoid(self.net(maps).flatten(1))


def fit_maps(attention: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """``[B, H, T, T]`` maps -> ``[B, H, 128, 128]``: padded query rows zeroed, then zero-padded
    or cropped to 128 tokens."""
    rows = attention_mask[:, None, :, None].to(attention.dtype)
    maps = attention * rows
    size = maps.shape[-1]
    if size > MAP_SIZE:
        return maps[..., :MAP_SIZE, :MAP_SIZE]
    return F.pad(maps, (0, MAP_SIZE - size, 0, MAP_SIZE - size))


def map_scores(
    pruner: HeadPruner,
    attentions: Iterable[torch.Tensor],
    attention_mask: torch.Tensor,
    channel: int,
    kept_heads: tuple[tuple[int, ...], ...],
    num_heads: int,
) -> torch.Tensor:
    """Scores ``[L, H]`` (original head indices) of one batch: the pruner's ``channel`` output
    per head, averaged over the batch's examples; heads the model no longer has score 0.

    All layers' maps go through the pruner in one call, as in the authors' code: in training
    mode its BatchNorm then normalises over every layer's maps together.
    """
    attentions = list(attentions)
    maps = [
        fit_maps(a, attention_mask).reshape(-1, 1, MAP_SIZE, MAP_SIZE)
        for a in attentions
        if a.shape[1]
    ]
    scores = pruner(torch.cat(maps).float())[:, channel] if maps else None
    rows, start = [], 0
    for attention, kept in zip(attentions, kept_heads, strict=True):
        batch, heads = attention.shape[:2]
        layer = torch.zeros(num_heads, device=attention.device)
        if heads:
            chunk = scores[start : start + batch * heads].reshape(batch, heads).mean(0)
            layer = layer.index_put((torch.tensor(kept, device=layer.device),), chunk)
            start += batch * heads
        rows.append(layer)
    return torch.stack(rows)


@torch.no_grad()
def head_scores(
    model: nn.Module,
    pruner: HeadPruner,
    batches: Iterable[dict[str, torch.Tensor]],
    channel: int,
) -> torch.Tensor:
    """Mean pruner score ``[L, H]`` over ``batches`` (a task's inputs; labels are dropped, never
    read). ``model`` and the pruner run in eval mode (BatchNorm uses its running statistics)."""
    plan = current_plan(model)
    device = module_device(model)
    was_training = model.training, pruner.training
    model.eval()
    pruner.eval().to(device)
    total, count = torch.zeros(plan.num_layers, plan.num_heads, device=device), 0
    for batch in batches:
        inputs = {k: v.to(device) for k, v in batch.items() if k != "labels"}
        attentions = attention_maps(model, inputs)
        total += map_scores(
            pruner, attentions, inputs["attention_mask"], channel, plan.kept_heads, plan.num_heads
        )
        count += 1
    model.train(was_training[0])
    pruner.train(was_training[1])
    return (total / max(count, 1)).cpu()


def save_pruner(pruner: HeadPruner, directory: Path, **provenance: object) -> None:
    """``pruner.safetensors`` and ``pruner.json`` (ndf, map size, and what made it)."""
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in pruner.state_dict().items()}
    safetensors.torch.save_file(state, str(directory / _WEIGHTS))
    config = {"format_version": 1, "ndf": pruner.ndf, "map_size": MAP_SIZE, **provenance}
    (directory / _CONFIG).write_text(json.dumps(config, indent=2, default=str) + "\n")


def resolve_pruner(name: str | Path) -> Path:
    """The directory of a pruner: ``"builtin"`` is the one shipped with prunekit."""
    if str(name) != BUILTIN_PRUNER:
        return Path(name)
    if not (_SHIPPED / _WEIGHTS).is_file():
        raise ModelLoadError(
            f"this prunekit install has no shipped SMP pruner ({_SHIPPED}); reinstall it, or "
            "train one with `prunekit smp train-pruner --out DIR` and pass "
            "--method-option pruner=DIR"
        )
    return _SHIPPED


def pruner_provenance(directory: str | Path) -> dict:
    """What ``pruner.json`` says made the pruner (empty when it says nothing)."""
    path = resolve_pruner(directory) / _CONFIG
    try:
        return json.loads(path.read_text()).get("trained_on", {})
    except (OSError, json.JSONDecodeError, AttributeError):
        return {}


def load_pruner(directory: str | Path) -> HeadPruner:
    """A pruner saved by `save_pruner` (safetensors only; ``"builtin"``: the shipped one), in
    eval mode."""
    directory = resolve_pruner(directory)
    if not (directory / _CONFIG).is_file() or not (directory / _WEIGHTS).is_file():
        raise ModelLoadError(
            f"{directory} holds no SMP pruner ({_CONFIG} and {_WEIGHTS}); train one with "
            "prunekit smp train-pruner"
        )
    try:
        ndf = json.loads((directory / _CONFIG).read_text())["ndf"]
        if isinstance(ndf, bool) or not isinstance(ndf, int) or ndf < 1:
            raise ValueError(f"ndf {ndf!r} is not a positive integer")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
        reason = f"no {err}" if isinstance(err, KeyError) else " ".join(str(err).split())
        raise ModelLoadError(
            f"{directory / _CONFIG} is not a pruner config ({reason}); save the pruner again "
            "with prunekit smp train-pruner"
        ) from None
    pruner = HeadPruner(ndf)
    try:
        safetensors.torch.load_model(pruner, str(directory / _WEIGHTS))
    except (RuntimeError, safetensors.SafetensorError) as err:
        message = f"{directory / _WEIGHTS} is not a pruner of ndf {pruner.ndf}: {err}"
        raise ModelLoadError(message) from None
    return pruner.eval()
