"""Convert the original DDPM CIFAR-10 checkpoint into a diffusers pipeline folder usable as `--model DIR`.

    python -m cifar5m convert-ddpm model-790000.ckpt --out models/ddpm-ema-cifar10
    python -m cifar5m generate --model models/ddpm-ema-cifar10 --labeler ... --out out/cifar5m

The checkpoint is a PyTorch state dict of Ho et al.'s architecture as ported by pesser/pytorch_diffusion
and used by the DDIM code (ermongroup/ddim `models/diffusion.py`): `temb.dense.{0,1}`, `conv_in`,
`down.N.block.M.{norm1,conv1,temb_proj,norm2,conv2,nin_shortcut}`, `down.N.attn.M.{norm,q,k,v,proj_out}`,
`down.N.downsample.conv`, `mid.{block_1,attn_1,block_2}`, `up.N...`, `norm_out`, `conv_out`. Its EMA
weights (`ema_cifar10`) reach FID ~3.2 with 1000-step sampling; the diffusers Hub port
`google/ddpm-cifar10-32` holds the non-EMA ones (FID ~12; pytorch_diffusion's README table).

The architecture (channels, levels, res blocks, attention levels) is read from the tensor shapes, so the
same code converts smaller models of this family. Diffusers' own `convert_ddpm_original_checkpoint_to_
diffusers.py` expects other key names (`downsample.op`) and an older diffusers, hence this mapping.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from cifar5m.errors import Cifar5mError
from shards.cliargs import add_out
from shards.jsonio import atomic_dir

# Ho et al. 2020, CIFAR-10: linear betas 1e-4..0.02 over 1000 steps, sampling variance beta_t
# ("fixed_large"), samples clipped to [-1, 1]; the same settings as google/ddpm-cifar10-32.
SCHEDULER = {
    "num_train_timesteps": 1000,
    "beta_schedule": "linear",
    "beta_start": 1e-4,
    "beta_end": 0.02,
    "variance_type": "fixed_large",
    "clip_sample": True,
}
GROUPS, NORM_EPS = 32, 1e-6  # the original Normalize(): GroupNorm(32, C, eps=1e-6)


@dataclass(frozen=True)
class OriginalArch:
    """The original model's hyper-parameters, as far as the weights tell them (plus resolution, dropout)."""

    ch: int
    ch_mult: tuple[int, ...]
    num_res_blocks: int
    attn_levels: tuple[int, ...]  # levels (0 = full resolution) whose blocks have attention
    in_channels: int
    out_ch: int
    resolution: int = 32
    dropout: float = 0.1  # Ho et al.'s CIFAR-10 dropout; not stored in the weights


def infer_arch(state: dict, resolution: int = 32, dropout: float = 0.1) -> OriginalArch:
    """Read channels, levels, blocks per level and attention levels off the checkpoint's tensor shapes."""
    levels = sorted({int(m.group(1)) for k in state if (m := re.match(r"down\.(\d+)\.", k))})
    if "conv_in.weight" not in state or not levels:
        sample = ", ".join(list(state)[:4])
        raise Cifar5mError(
            f"no conv_in.weight or down.N.* keys (found {sample}, ...): not a checkpoint of the "
            "original DDPM layout (pesser/pytorch_diffusion, ermongroup/ddim)"
        )
    ch = state["conv_in.weight"].shape[0]
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"down\.0\.block\.(\d+)\.", k))}
    ch_mult = tuple(state[f"down.{i}.block.0.conv1.weight"].shape[0] // ch for i in levels)
    attn = tuple(i for i in levels if f"down.{i}.attn.0.q.weight" in state)
    return OriginalArch(
        ch,
        ch_mult,
        len(blocks),
        attn,
        state["conv_in.weight"].shape[1],
        state["conv_out.weight"].shape[0],
        resolution,
        dropout,
    )


def unet_config(arch: OriginalArch) -> dict:
    """The UNet2DModel config computing the same function as the original model."""
    n = len(arch.ch_mult)
    return {
        "sample_size": arch.resolution,
        "in_channels": arch.in_channels,
        "out_channels": arch.out_ch,
        "block_out_channels": tuple(arch.ch * m for m in arch.ch_mult),
        "layers_per_block": arch.num_res_blocks,
        "down_block_types": tuple("AttnDownBlock2D" if i in arch.attn_levels else "DownBlock2D" for i in range(n)),
        "up_block_types": tuple("AttnUpBlock2D" if n - 1 - i in arch.attn_levels else "UpBlock2D" for i in range(n)),
        # get_timestep_embedding: [sin, cos] with exponent log(10000) / (half - 1): no flip, shift 1
        "flip_sin_to_cos": False,
        "freq_shift": 1,
        # Downsample pads (0, 1, 0, 1) then a stride-2 conv without padding: diffusers' padding=0 path
        "downsample_padding": 0,
        "attention_head_dim": None,  # one head over all channels, scaled by C ** -0.5
        "norm_num_groups": GROUPS,
        "norm_eps": NORM_EPS,
        "act_fn": "silu",
        "dropout": arch.dropout,
    }


RESNET = {
    "norm1": "norm1",
    "conv1": "conv1",
    "temb_proj": "time_emb_proj",
    "norm2": "norm2",
    "conv2": "conv2",
    "nin_shortcut": "conv_shortcut",
}
ATTENTION = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}
FIXED = {
    "temb.dense.0": "time_embedding.linear_1",
    "temb.dense.1": "time_embedding.linear_2",
    "conv_in": "conv_in",
    "norm_out": "conv_norm_out",
    "conv_out": "conv_out",
}


def rename(key: str, levels: int) -> str:
    """The diffusers name of one original key (`up.N` counts from full resolution, `up_blocks` from the bottom)."""
    module, _, param = key.rpartition(".")
    if module in FIXED:
        return f"{FIXED[module]}.{param}"
    if m := re.fullmatch(r"(down|up)\.(\d+)\.(block|attn)\.(\d+)\.(\w+)", module):
        side, level, kind, index, layer = m.groups()
        blocks = f"{side}_blocks.{int(level) if side == 'down' else levels - 1 - int(level)}"
        table, group = (RESNET, "resnets") if kind == "block" else (ATTENTION, "attentions")
        if layer in table:
            return f"{blocks}.{group}.{index}.{table[layer]}.{param}"
    if m := re.fullmatch(r"down\.(\d+)\.downsample\.conv", module):
        return f"down_blocks.{m.group(1)}.downsamplers.0.conv.{param}"
    if m := re.fullmatch(r"up\.(\d+)\.upsample\.conv", module):
        return f"up_blocks.{levels - 1 - int(m.group(1))}.upsamplers.0.conv.{param}"
    if (m := re.fullmatch(r"mid\.block_([12])\.(\w+)", module)) and m.group(2) in RESNET:
        return f"mid_block.resnets.{int(m.group(1)) - 1}.{RESNET[m.group(2)]}.{param}"
    if (m := re.fullmatch(r"mid\.attn_1\.(\w+)", module)) and m.group(1) in ATTENTION:
        return f"mid_block.attentions.0.{ATTENTION[m.group(1)]}.{param}"
    raise Cifar5mError(f"checkpoint key {key!r} has no place in the DDPM UNet; is this the original DDPM layout?")


def convert_state_dict(state: dict, levels: int) -> dict:
    """Original state dict -> UNet2DModel state dict. Attention q/k/v/proj_out are 1x1 convs in the original
    and Linear layers in diffusers: the same weights with the two trailing unit axes dropped."""
    converted = {}
    for key, tensor in state.items():
        new = rename(key, levels)
        if re.search(r"\.attentions\.\d+\.(to_q|to_k|to_v|to_out\.0)\.weight$", new):
            tensor = tensor.reshape(tensor.shape[0], tensor.shape[1])
        converted[new] = tensor
    return converted


def load_checkpoint(path: Path) -> dict:
    """The state dict of a `model-*.ckpt` file (tensors only: `weights_only`, never arbitrary pickles)."""
    import torch  # heavy: only the conversion needs it

    if not path.is_file():
        raise Cifar5mError(f"{path}: no such file; download the DDPM CIFAR-10 EMA checkpoint (see README)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip/tensor errors all mean "not a readable checkpoint"
        raise Cifar5mError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise Cifar5mError(
            f"{path}: holds a {type(state).__name__}, not a state dict of tensors; pass the "
            "model's state dict (e.g. pytorch_diffusion's ema_cifar10 model-790000.ckpt)"
        )
    return {k.removeprefix("module."): v for k, v in state.items()}


def convert_ddpm(
    ckpt: str | os.PathLike, out_dir: str | os.PathLike, resolution: int = 32, dropout: float = 0.1
) -> Path:
    """Write a DDPMPipeline folder (unet/, scheduler/, model_index.json) converted from `ckpt`."""
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    path, out = Path(ckpt), Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise Cifar5mError(f"{out}: exists and is not empty; choose a new --out")
    state = load_checkpoint(path)
    arch = infer_arch(state, resolution, dropout)
    unet = UNet2DModel(**unet_config(arch))
    try:
        unet.load_state_dict(convert_state_dict(state, len(arch.ch_mult)), strict=True)
    except RuntimeError as exc:  # missing/unexpected keys or wrong shapes
        first = str(exc).splitlines()[1] if "\n" in str(exc) else str(exc)
        raise Cifar5mError(
            f"{path}: weights do not fit the inferred UNet {asdict(arch)} ({first.strip()[:300]}); "
            "is the checkpoint complete?"
        ) from exc
    with atomic_dir(out) as tmp:
        DDPMPipeline(unet=unet.eval(), scheduler=DDPMScheduler(**SCHEDULER)).save_pretrained(tmp)
        (tmp / "conversion.json").write_text(
            json.dumps({"source": path.name, "original_arch": asdict(arch)}, indent=1) + "\n"
        )
    return out


def _cmd_convert(args) -> int:
    out = convert_ddpm(args.ckpt, args.out, args.resolution, args.dropout)
    print(f"wrote {out}: a DDPM pipeline folder; use it with `python -m cifar5m generate --model {out} ...`")
    return 0


def register(sub) -> None:
    """Add `convert-ddpm` to the `python -m cifar5m` subcommands."""
    p = sub.add_parser(
        "convert-ddpm",
        help="original DDPM CIFAR-10 (EMA) checkpoint -> diffusers pipeline folder",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("ckpt", help="the model-*.ckpt state dict (pesser/pytorch_diffusion / ermongroup/ddim layout)")
    add_out(p, "new pipeline folder (model_index.json, unet/, scheduler/)")
    p.add_argument("--resolution", type=int, default=32, help="image size the model was trained at (default 32)")
    p.add_argument("--dropout", type=float, default=0.1, help="training dropout kept in the config (default 0.1)")
    p.set_defaults(func=_cmd_convert)
