"""LPTN / LPTNPaper against a straightforward functional forward written from docs/REFERENCE.md 2.

``reference_forward`` below reads the raw state_dict tensors by their official key names and
applies the spec step by step (its own pyramid: explicit reflect indices and shifted sums), so
it shares no code with ``lptn.archs``. The official checkpoint is read for it with a bare
``torch.load``, independently of the project's loader.
"""

from __future__ import annotations

import logging
from typing import Dict, List, Sequence

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lptn.archs import build_network
from lptn.archs.lptn_arch import LPTN, LPTNPaper, lptn_options_from_state_dict
from lptn.archs.weight_loading import load_network_weights

OFFICIAL_OPTIONS = {"type": "LPTN", "nrb_low": 5, "nrb_high": 3, "num_high": 3}
OFFICIAL_PARAMETERS = 617_567
ALIAS_KEYS = {f"trans_high.trans_mask_block.{i}.{p}" for i in (0, 2) for p in ("weight", "bias")}
# Photos of different shapes (portrait 512x341, 340x512, 344x512, odd 343x512).
PHOTOS = ["a0212", "a2917", "a2995", "a4532"]
# Max abs error of a forward in each dtype against the float64 reference.
FORWARD_ATOL = {
    torch.float64: 1e-10,
    torch.float32: 1e-5,
    torch.float16: 2e-2,
    torch.bfloat16: 6e-2,
}

_BINOMIAL = [1.0, 4.0, 6.0, 4.0, 1.0]


# ------------------------------------------------------------ independent reference forward
def _reflect_rows(n: int) -> List[int]:
    """Indices of a length-n axis after reflect padding of 2 (edge not repeated)."""
    return [2, 1, *range(n), n - 2, n - 3]


def _blur(x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    h, w = x.shape[-2:]
    rows = torch.tensor(_reflect_rows(h), device=x.device)
    cols = torch.tensor(_reflect_rows(w), device=x.device)
    padded = x.index_select(-2, rows).index_select(-1, cols)
    out = torch.zeros_like(x)
    for dy in range(5):
        for dx in range(5):
            weight = gain * _BINOMIAL[dy] * _BINOMIAL[dx] / 256.0
            out = out + weight * padded[..., dy : dy + h, dx : dx + w]
    return out


def _down(x: torch.Tensor) -> torch.Tensor:
    return _blur(x)[..., ::2, ::2]


def _up(x: torch.Tensor) -> torch.Tensor:
    n, c, h, w = x.shape
    spread = torch.zeros(n, c, 2 * h, 2 * w, dtype=x.dtype, device=x.device)
    spread[..., ::2, ::2] = x
    return _blur(spread, gain=4.0)


def _nearest(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """F.interpolate's default nearest: source index floor(dst * in / out)."""
    ih, iw = x.shape[-2:]
    rows = torch.arange(size[0], device=x.device) * ih // size[0]
    cols = torch.arange(size[1], device=x.device) * iw // size[1]
    return x.index_select(-2, rows).index_select(-1, cols)


def _decompose(img: torch.Tensor, num_high: int) -> List[torch.Tensor]:
    bands, cur = [], img
    for _ in range(num_high):
        down = _down(cur)
        bands.append(cur - _nearest(_up(down), cur.shape[-2:]))
        cur = down
    return bands + [cur]


def _reconstruct(pyramid: List[torch.Tensor]) -> torch.Tensor:
    img = pyramid[-1]
    for band in reversed(pyramid[:-1]):
        img = _nearest(_up(img), band.shape[-2:]) + band
    return img


def reference_forward(
    img: torch.Tensor,
    sd: Dict[str, torch.Tensor],
    num_high: int,
    nrb_low: int,
    nrb_high: int,
    paper: bool = False,
) -> torch.Tensor:
    """docs/REFERENCE.md section 2, step by step, from state_dict tensors. No clamp anywhere."""
    sd = {k: v.to(img) for k, v in sd.items()}

    def conv(x: torch.Tensor, name: str, padding: int = 1) -> torch.Tensor:
        return F.conv2d(x, sd[f"{name}.weight"], sd[f"{name}.bias"], padding=padding)

    def residual(x: torch.Tensor, name: str) -> torch.Tensor:
        return x + conv(F.leaky_relu(conv(x, f"{name}.block.0")), f"{name}.block.2")

    pyramid = _decompose(img, num_high)
    low = pyramid[-1]

    # trans_low: conv, IN, leaky, conv, leaky, residual blocks, conv, leaky, conv; tanh(low + .)
    t = F.leaky_relu(F.instance_norm(conv(low, "trans_low.model.0"), eps=1e-5))
    t = F.leaky_relu(conv(t, "trans_low.model.3"))
    for r in range(nrb_low):
        t = residual(t, f"trans_low.model.{5 + r}")
    t = F.leaky_relu(conv(t, f"trans_low.model.{5 + nrb_low}"))
    t = conv(t, f"trans_low.model.{5 + nrb_low + 2}")
    fake_low = torch.tanh(low + t)

    # trans_high mask network at the coarsest band's size.
    size = pyramid[-2].shape[-2:]
    m = torch.cat([pyramid[-2], _nearest(low, size), _nearest(fake_low, size)], dim=1)
    m = F.leaky_relu(conv(m, "trans_high.model.0"))
    for r in range(nrb_high):
        m = residual(m, f"trans_high.model.{2 + r}")
    mask = conv(m, f"trans_high.model.{2 + nrb_high}")

    new_bands = []
    for i in range(num_high):
        band = pyramid[num_high - 1 - i]
        mask = _nearest(mask, band.shape[-2:])
        block = f"trans_high.trans_mask_block_{i}"

        def refine(x: torch.Tensor, block: str = block) -> torch.Tensor:
            return conv(F.leaky_relu(conv(x, f"{block}.0", 0)), f"{block}.2", 0)

        if paper:
            mask = refine(mask)
            new_bands.append(band * mask)
        else:
            new_bands.append(refine(band * mask + band))
    return _reconstruct(new_bands[::-1] + [fake_low])


# ------------------------------------------------------------------------------- fixtures
def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) float32 array -> (1, 3, H, W) tensor."""
    return torch.from_numpy(np.array(rgb, dtype=np.float32)).permute(2, 0, 1)[None].contiguous()


@pytest.fixture(scope="module")
def official_state(official_checkpoint) -> Dict[str, torch.Tensor]:
    """The official file exactly as stored (alias keys included)."""
    return torch.load(official_checkpoint, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def official_net(official_checkpoint) -> torch.nn.Module:
    net = build_network(dict(OFFICIAL_OPTIONS))
    load_network_weights(net, official_checkpoint)
    return net.eval()


@pytest.fixture(scope="module")
def photos(fivek_pairs) -> Dict[str, np.ndarray]:
    return {name: source for name, source, _ in fivek_pairs}


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.double() - b.double()).abs().max().item()


# ---------------------------------------------------------------------- official checkpoint
@pytest.mark.parametrize("name", PHOTOS)
def test_official_checkpoint_matches_reference_on_full_photos(
    name, photos, official_net, official_state
):
    if name not in photos:
        pytest.skip(f"{name} not in the FiveK sample")
    x = to_tensor(photos[name])
    with torch.no_grad():
        out = official_net(x)
        want = reference_forward(x, official_state, 3, 5, 3)
    assert out.shape == x.shape
    assert max_abs(out, want) <= 1e-5
    # Not clamped: the released network overshoots [0, 1] on real photos, and so must we.
    assert out.min().item() < 0.0 or out.max().item() > 1.0
    assert max_abs(out, out.clamp(0, 1)) > 1e-3


@pytest.mark.parametrize("size", [(97, 131), (9, 9), (10, 11), (33, 17), (131, 97)])
def test_official_checkpoint_matches_reference_on_odd_crops(
    size, photos, official_net, official_state
):
    photo = photos[sorted(photos)[0]]
    rng = np.random.default_rng(sum(size))
    crops = []
    for _ in range(2):  # a batch of two different crops: instance norm is per sample
        top = rng.integers(0, photo.shape[0] - size[0] + 1)
        left = rng.integers(0, photo.shape[1] - size[1] + 1)
        crops.append(to_tensor(photo[top : top + size[0], left : left + size[1]]))
    x = torch.cat(crops)
    with torch.no_grad():
        out = official_net(x)
        want = reference_forward(x, official_state, 3, 5, 3)
        single = official_net(crops[1])
    assert out.shape == x.shape
    assert max_abs(out, want) <= 1e-5
    assert max_abs(out[1:], single) <= 1e-6


def test_official_checkpoint_in_float64_matches_reference_tightly(
    photos, official_checkpoint, official_state
):
    net = build_network(dict(OFFICIAL_OPTIONS))
    load_network_weights(net, official_checkpoint)
    net = net.double().eval()
    x = to_tensor(photos[sorted(photos)[-1]])[..., 100:197, 50:181].double()
    with torch.no_grad():
        assert max_abs(net(x), reference_forward(x, official_state, 3, 5, 3)) <= 1e-10


def test_strict_load_drops_exactly_the_four_alias_keys(
    official_checkpoint, official_state, lptn_log
):
    net = build_network(dict(OFFICIAL_OPTIONS))
    logging.getLogger("lptn").setLevel(logging.DEBUG)  # the notice is at DEBUG (every run has it)
    load_network_weights(net, official_checkpoint, strict=True)
    own = net.state_dict()
    assert set(official_state) - set(own) == ALIAS_KEYS
    assert set(own) <= set(official_state)
    for key, value in own.items():
        assert torch.equal(value, official_state[key]), key
    for key in ALIAS_KEYS:
        assert torch.equal(
            official_state[key],
            official_state[key.replace("trans_mask_block.", "trans_mask_block_2.")],
        )
    dropped = [r.getMessage() for r in lptn_log.records if "alias" in r.getMessage()]
    assert len(dropped) == 1
    assert "dropped 4 alias keys" in dropped[0] and str(official_checkpoint) in dropped[0]


def test_parameter_count_is_the_released_one(official_state):
    net = build_network(dict(OFFICIAL_OPTIONS))
    assert sum(p.numel() for p in net.parameters()) == OFFICIAL_PARAMETERS
    assert (
        sum(v.numel() for k, v in official_state.items() if k not in ALIAS_KEYS)
        == OFFICIAL_PARAMETERS
    )
    assert all(name.startswith(("trans_low.", "trans_high.")) for name in net.state_dict())


def test_options_are_read_back_from_the_official_state(official_state):
    assert lptn_options_from_state_dict(official_state) == OFFICIAL_OPTIONS
    assert lptn_options_from_state_dict({"conv.weight": torch.zeros(1)}) is None


# ------------------------------------------------------------------- any config / precision
CONFIGS = [(1, 0, 0), (2, 1, 2), (3, 2, 1), (4, 1, 1), (5, 1, 0)]


@pytest.mark.parametrize("arch", ["LPTN", "LPTNPaper"])
@pytest.mark.parametrize("num_high,nrb_low,nrb_high", CONFIGS)
def test_any_configuration_matches_reference(arch, num_high, nrb_low, nrb_high):
    torch.manual_seed(num_high * 10 + nrb_low)
    net = (
        build_network(
            {"type": arch, "num_high": num_high, "nrb_low": nrb_low, "nrb_high": nrb_high}
        )
        .double()
        .eval()
    )
    x = torch.rand(2, 3, 2**num_high + 9, 2**num_high + 4, dtype=torch.float64)
    with torch.no_grad():
        out = net(x)
        want = reference_forward(
            x, net.state_dict(), num_high, nrb_low, nrb_high, paper=arch == "LPTNPaper"
        )
        other = (
            reference_forward(
                x, net.state_dict(), num_high, nrb_low, nrb_high, paper=arch != "LPTNPaper"
            )
            if arch == "LPTN"
            else None
        )
    assert out.shape == x.shape
    assert max_abs(out, want) <= 1e-10
    if other is not None:  # the two mask rules really differ (shapes permitting)
        assert max_abs(out, other) > 1e-6


def test_forward_on_every_device_and_dtype(device, dtype):
    torch.manual_seed(0)
    net = LPTN().eval()
    x = torch.rand(1, 3, 37, 53)
    with torch.no_grad():
        want = reference_forward(x.double(), net.state_dict(), 3, 5, 3)
        out = net.to(device=device, dtype=dtype)(x.to(device=device, dtype=dtype))
    assert out.shape == x.shape and out.dtype == dtype and out.device.type == device.type
    assert torch.isfinite(out).all()
    assert max_abs(out.cpu(), want) <= FORWARD_ATOL[dtype]


@pytest.mark.parametrize("num_high,nrb_low,nrb_high", CONFIGS)
def test_paper_variant_has_the_same_names_and_only_mask_channels_differ(
    num_high, nrb_low, nrb_high
):
    options = {"num_high": num_high, "nrb_low": nrb_low, "nrb_high": nrb_high}
    released = build_network({"type": "LPTN", **options}).state_dict()
    paper = build_network({"type": "LPTNPaper", **options}).state_dict()
    assert list(paper) == list(released)
    mask_keys = {f"trans_high.model.{2 + nrb_high}.weight", f"trans_high.model.{2 + nrb_high}.bias"}
    mask_keys |= {
        k
        for k in released
        if k.startswith("trans_high.trans_mask_block_") and not k.endswith(".0.bias")
    }
    differing = {k for k in released if released[k].shape != paper[k].shape}
    assert differing == mask_keys
    assert paper[f"trans_high.model.{2 + nrb_high}.weight"].shape == (1, 64, 3, 3)
    assert paper["trans_high.trans_mask_block_0.0.weight"].shape == (16, 1, 1, 1)
    assert released["trans_high.trans_mask_block_0.0.weight"].shape == (16, 3, 1, 1)
    assert sum(k.startswith("trans_high.trans_mask_block_") for k in paper) == 4 * num_high


@pytest.mark.parametrize(
    "cls,num_high,size",
    [(LPTN, 3, (8, 8)), (LPTN, 3, (8, 40)), (LPTNPaper, 4, (40, 16)), (LPTN, 1, (2, 5))],
)
def test_too_small_input_is_a_clear_error(cls, num_high, size):
    net = cls(num_high=num_high)
    with pytest.raises(ValueError, match=f"{size[0]}x{size[1]}.*at least {2**num_high + 1}"):
        net(torch.rand(1, 3, *size))
    smallest = 2**num_high + 1
    assert net(torch.rand(1, 3, smallest, smallest)).shape == (1, 3, smallest, smallest)


def test_build_network_errors_name_the_option_block():
    with pytest.raises(KeyError, match=r"network_g\.type.*'LPTM'.*LPTN"):
        build_network({"type": "LPTM"})
    with pytest.raises(TypeError, match=r"network_g \(LPTN\).*nrb_lo"):
        build_network({"type": "LPTN", "nrb_lo": 5})


@pytest.mark.parametrize("arch", ["LPTN", "LPTNPaper"])
@pytest.mark.parametrize("num_high", [1, 3, 4])
def test_identity_init_passes_the_bands_through(arch, num_high):
    torch.manual_seed(num_high)
    net = build_network({"type": arch, "num_high": num_high, "init": "identity"}).double()
    x = torch.rand(2, 3, 2**num_high + 30, 2**num_high + 17, dtype=torch.float64)
    pyramid = _decompose(x, num_high)
    want = _reconstruct([*pyramid[:-1], torch.tanh(pyramid[-1])])
    out = net(x)
    assert max_abs(out.detach(), want) <= 1e-7  # the weights 1/1.01 are float32-rounded
    # The same computation as any LPTN (only the starting weights differ).
    with torch.no_grad():
        ref = reference_forward(x, net.state_dict(), num_high, 5, 3, paper=arch == "LPTNPaper")
    assert max_abs(out.detach(), ref) <= 1e-10
    # Training can leave the identity: every layer that decides the output gets a gradient.
    (out - x * 1.1).square().mean().backward()
    grads = {name: p.grad for name, p in net.named_parameters()}
    low_last = f"trans_low.model.{len(net.trans_low.model) - 1}.weight"
    mask_last = f"trans_high.model.{len(net.trans_high.model) - 1}.weight"
    assert grads[low_last].abs().sum() > 0 and grads[mask_last].abs().sum() > 0
    c = net.mask_channels  # the hidden units beyond the first 2c start outside the identity
    for i in range(num_high):
        assert grads[f"trans_high.trans_mask_block_{i}.2.weight"][:, 2 * c :].abs().sum() > 0


def test_unknown_init_is_a_clear_error():
    with pytest.raises(ValueError, match="init: expected 'default' or 'identity', got 'zeros'"):
        LPTN(init="zeros")
