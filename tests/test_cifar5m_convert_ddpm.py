"""`convert-ddpm`: a synthetic checkpoint of the original DDPM layout (small ch / ch_mult) converts into a
UNet2DModel whose output equals the original architecture's, written here from ermongroup/ddim
`models/diffusion.py` (Ho et al.'s model as ported to PyTorch)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from cifar5m.cli import main


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -(math.log(10000) / (half - 1)))
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


def swish(x):
    return x * torch.sigmoid(x)


def norm(c):
    return nn.GroupNorm(32, c, eps=1e-6)


class ResnetBlock(nn.Module):
    def __init__(self, cin, cout, temb_ch):
        super().__init__()
        self.norm1, self.conv1 = norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.temb_proj = nn.Linear(temb_ch, cout)
        self.norm2, self.conv2 = norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x, temb):
        h = self.conv1(swish(self.norm1(x))) + self.temb_proj(swish(temb))[:, :, None, None]
        h = self.conv2(swish(self.norm2(h)))  # dropout: identity in eval
        return (self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x) + h


class AttnBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.norm = norm(c)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(c, c, 1) for _ in range(4))

    def forward(self, x):
        h = self.norm(x)
        q, k, v = self.q(h), self.k(h), self.v(h)
        b, c, hh, ww = q.shape
        w = torch.bmm(q.reshape(b, c, -1).permute(0, 2, 1), k.reshape(b, c, -1)) * c**-0.5
        w = torch.softmax(w, dim=2)
        out = torch.bmm(v.reshape(b, c, -1), w.permute(0, 2, 1)).reshape(b, c, hh, ww)
        return x + self.proj_out(out)


class OriginalDDPM(nn.Module):
    """Ho et al.'s UNet with the original module names (so its state_dict has the original key layout)."""

    def __init__(self, ch=32, ch_mult=(1, 2), num_res_blocks=2, attn_resolutions=(8,), resolution=16):
        super().__init__()
        self.ch, self.levels, self.nrb = ch, len(ch_mult), num_res_blocks
        self.temb = nn.Module()
        self.temb.dense = nn.ModuleList([nn.Linear(ch, 4 * ch), nn.Linear(4 * ch, 4 * ch)])
        self.conv_in = nn.Conv2d(3, ch, 3, padding=1)
        in_mult, res, self.down = (1,) + tuple(ch_mult), resolution, nn.ModuleList()
        for i, mult in enumerate(ch_mult):
            level, cin = nn.Module(), ch * in_mult[i]
            level.block, level.attn = nn.ModuleList(), nn.ModuleList()
            for _ in range(num_res_blocks):
                level.block.append(ResnetBlock(cin, ch * mult, 4 * ch))
                cin = ch * mult
                if res in attn_resolutions:
                    level.attn.append(AttnBlock(cin))
            if i != self.levels - 1:
                level.downsample = nn.Module()
                level.downsample.conv = nn.Conv2d(cin, cin, 3, stride=2)
                res //= 2
            self.down.append(level)
        self.mid = nn.Module()
        self.mid.block_1, self.mid.attn_1, self.mid.block_2 = (
            ResnetBlock(cin, cin, 4 * ch),
            AttnBlock(cin),
            ResnetBlock(cin, cin, 4 * ch),
        )
        self.up = nn.ModuleList()
        for i in reversed(range(self.levels)):
            level = nn.Module()
            level.block, level.attn = nn.ModuleList(), nn.ModuleList()
            skip = ch * ch_mult[i]
            for j in range(num_res_blocks + 1):
                if j == num_res_blocks:
                    skip = ch * in_mult[i]
                level.block.append(ResnetBlock(cin + skip, ch * ch_mult[i], 4 * ch))
                cin = ch * ch_mult[i]
                if res in attn_resolutions:
                    level.attn.append(AttnBlock(cin))
            if i != 0:
                level.upsample = nn.Module()
                level.upsample.conv = nn.Conv2d(cin, cin, 3, padding=1)
                res *= 2
            self.up.insert(0, level)
        self.norm_out, self.conv_out = norm(cin), nn.Conv2d(cin, 3, 3, padding=1)

    def forward(self, x, t):
        temb = self.temb.dense[1](swish(self.temb.dense[0](timestep_embedding(t, self.ch))))
        hs = [self.conv_in(x)]
        for i in range(self.levels):
            for j in range(self.nrb):
                h = self.down[i].block[j](hs[-1], temb)
                hs.append(self.down[i].attn[j](h) if len(self.down[i].attn) else h)
            if i != self.levels - 1:
                hs.append(self.down[i].downsample.conv(nn.functional.pad(hs[-1], (0, 1, 0, 1))))
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(hs[-1], temb)), temb)
        for i in reversed(range(self.levels)):
            for j in range(self.nrb + 1):
                h = self.up[i].block[j](torch.cat([h, hs.pop()], dim=1), temb)
                if len(self.up[i].attn):
                    h = self.up[i].attn[j](h)
            if i != 0:
                h = self.up[i].upsample.conv(nn.functional.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(swish(self.norm_out(h)))


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """A random OriginalDDPM (every parameter perturbed, norms included) saved as a plain state dict."""
    torch.manual_seed(0)
    model = OriginalDDPM().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    path = tmp_path_factory.mktemp("ckpt") / "model-790000.ckpt"
    torch.save(model.state_dict(), path)
    return model, path


def test_converted_unet_computes_the_original_function(original, tmp_path):
    from diffusers import DDPMPipeline

    model, ckpt = original
    out = tmp_path / "pipe"
    assert main(["convert-ddpm", str(ckpt), "--out", str(out), "--resolution", "16"]) == 0
    pipe = DDPMPipeline.from_pretrained(out)
    unet = pipe.unet.eval()
    assert unet.config.block_out_channels == [32, 64] and unet.config.layers_per_block == 2
    assert unet.config.down_block_types == ["DownBlock2D", "AttnDownBlock2D"]
    assert unet.config.dropout == 0.1 and unet.config.sample_size == 16
    sched = pipe.scheduler.config
    assert (sched.num_train_timesteps, sched.beta_start, sched.beta_end, sched.variance_type) == (
        1000,
        1e-4,
        0.02,
        "fixed_large",
    )
    torch.manual_seed(1)
    x, t = torch.randn(3, 3, 16, 16), torch.tensor([0, 417, 999])
    with torch.no_grad():
        expected, got = model(x, t), unet(x, t).sample
    assert expected.abs().mean() > 0.1  # a real signal, not zeros on both sides
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert json.loads((out / "conversion.json").read_text())["original_arch"]["attn_levels"] == [1]


def test_module_prefixed_state_dict_converts_too(original, tmp_path):
    model, _ = original
    ckpt = tmp_path / "ddp.ckpt"
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, ckpt)
    assert main(["convert-ddpm", str(ckpt), "--out", str(tmp_path / "pipe"), "--resolution", "16"]) == 0


def test_bad_checkpoints_are_one_line_errors(original, tmp_path, capsys):
    model, _ = original
    cases = {
        "text.ckpt": (lambda p: p.write_text("hello"), "not a readable PyTorch checkpoint"),
        "other.ckpt": (
            lambda p: torch.save({"fc.weight": torch.zeros(2, 2)}, p),
            "not a checkpoint of the original DDPM",
        ),
        "cut.ckpt": (
            lambda p: torch.save({k: v for k, v in model.state_dict().items() if "mid.attn_1.q" not in k}, p),
            "weights do not fit the inferred UNet",
        ),
        "list.ckpt": (lambda p: torch.save([model.state_dict()], p), "holds a list, not a state dict"),
    }
    for name, (make, message) in cases.items():
        make(tmp_path / name)
        assert main(["convert-ddpm", str(tmp_path / name), "--out", str(tmp_path / f"out-{name}")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, (name, err)
        assert not (tmp_path / f"out-{name}").exists()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    assert main(["convert-ddpm", str(original[1]), "--out", str(tmp_path / "busy")]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert (tmp_path / "busy" / "keep.txt").read_text() == "mine"


def test_the_cifar10_architecture_maps_onto_the_ddpm_cifar10_unet():
    """Ho et al.'s CIFAR-10 model (ch 128, ch_mult 1,2,2,2, attention at 16x16) gives the UNet of
    google/ddpm-cifar10-32: the same block layout and its 35,746,307 parameters, every weight placed."""
    from diffusers import UNet2DModel

    from cifar5m.convert_ddpm import convert_state_dict, infer_arch, unet_config

    with torch.device("meta"):
        state = OriginalDDPM(ch=128, ch_mult=(1, 2, 2, 2), attn_resolutions=(16,), resolution=32).state_dict()
        config = unet_config(infer_arch(state))
        unet = UNet2DModel(**config)
    assert config["block_out_channels"] == (128, 256, 256, 256)
    assert config["down_block_types"] == ("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D")
    assert config["up_block_types"] == ("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D")
    assert sum(p.numel() for p in unet.parameters()) == 35_746_307
    converted = convert_state_dict(state, 4)
    assert set(converted) == set(unet.state_dict())
    assert all(converted[k].shape == v.shape for k, v in unet.state_dict().items())


def test_the_converted_folder_generates_as_model(original, tmp_path, tiny_labeler):
    from shards import load_manifest

    pipe = tmp_path / "pipe"
    assert main(["convert-ddpm", str(original[1]), "--out", str(pipe), "--resolution", "16"]) == 0
    out = tmp_path / "gen"
    assert (
        main(
            [
                "generate",
                "--model",
                str(pipe),
                "--labeler",
                f"local-dir:{tiny_labeler}",
                "--sampler",
                "ddim",
                "--steps",
                "2",
                "--train",
                "4",
                "--test",
                "0",
                "--shard-size",
                "4",
                "--batch-size",
                "4",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    m = load_manifest(out)
    assert m.image_shape == [16, 16, 3] and m.splits["train"].count == 4
    assert m.config["generator"]["model"].endswith("pipe")
