"""ImageAdaptive3DLUT: the trilinear lookup against a numpy reference, the identity, the parts."""

from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import numpy as np
import pytest
import torch

from lptn.archs import build_network
from lptn.archs.lut3d_arch import ImageAdaptive3DLUT, apply_lut, identity_lut


def numpy_trilinear(image: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Plain per-pixel trilinear interpolation: image (3, H, W) in [0, 1], lut (3, S, S, S)
    indexed [c, ib, ig, ir] -> (3, H, W), in float64."""
    size = lut.shape[1]
    out = np.zeros(image.shape, np.float64)
    for y in range(image.shape[1]):
        for x in range(image.shape[2]):
            pos = np.clip(image[:, y, x].astype(np.float64), 0, 1) * (size - 1)
            low = np.minimum(np.floor(pos).astype(int), size - 2)
            frac = pos - low
            value = np.zeros(3)
            for dr in (0, 1):
                for dg in (0, 1):
                    for db in (0, 1):
                        w = (
                            (frac[0] if dr else 1 - frac[0])
                            * (frac[1] if dg else 1 - frac[1])
                            * (frac[2] if db else 1 - frac[2])
                        )
                        value += w * lut[:, low[2] + db, low[1] + dg, low[0] + dr]
            out[:, y, x] = value
    return out


def test_lookup_matches_numpy_reference_on_random_luts() -> None:
    gen = torch.Generator().manual_seed(0)
    size = 9
    lut = torch.rand(2, 3, size, size, size, generator=gen, dtype=torch.float64)
    # Interior points, the 8 corners of the cube, lattice points and points on the faces.
    interior = torch.rand(2, 3, 6, 7, generator=gen, dtype=torch.float64)
    corners = torch.tensor([[r, g, b] for r in (0, 1) for g in (0, 1) for b in (0, 1)]).double()
    lattice = torch.tensor([[2, 5, 8], [8, 0, 3], [4, 4, 4]]).double() / (size - 1)
    faces = torch.tensor([[0, 0.3, 0.7], [1, 0.55, 0.1], [0.25, 1, 0]]).double()
    special = torch.cat([corners, lattice, faces]).T.reshape(1, 3, 2, 7).repeat(2, 1, 1, 1)
    image = torch.cat([interior, special], dim=2)
    got = apply_lut(image, lut)
    for b in range(2):
        want = numpy_trilinear(image[b].numpy(), lut[b].numpy())
        np.testing.assert_allclose(got[b].numpy(), want, rtol=0, atol=1e-12)
    # A corner returns the LUT entry itself: the axis order (r last, b first) is right.
    assert torch.allclose(got[0, :, 6, 4], lut[0, :, 0, 0, size - 1])  # (r, g, b) = (1, 0, 0)
    assert torch.allclose(got[0, :, 6, 1], lut[0, :, size - 1, 0, 0])  # (r, g, b) = (0, 0, 1)


def test_lookup_float32_on_a_fivek_photo(
    fivek_pairs: List[Tuple[str, np.ndarray, np.ndarray]],
) -> None:
    _, source, _ = fivek_pairs[0]
    crop = np.ascontiguousarray(source[100:116, 200:220].transpose(2, 0, 1))
    lut = identity_lut(33) + 0.1 * torch.randn(
        3, 33, 33, 33, generator=torch.Generator().manual_seed(1)
    )
    got = apply_lut(torch.from_numpy(crop)[None], lut[None])[0]
    np.testing.assert_allclose(got.numpy(), numpy_trilinear(crop, lut.numpy()), atol=2e-6)


def test_identity_lut_returns_the_input(
    fivek_pairs: List[Tuple[str, np.ndarray, np.ndarray]],
) -> None:
    _, source, _ = fivek_pairs[1]
    image = torch.from_numpy(np.ascontiguousarray(source.transpose(2, 0, 1)))[None]
    out = apply_lut(image, identity_lut(33)[None])
    assert (out - image).abs().max().item() < 1e-6
    # The untrained network's LUT: the weights mix identity + zeros, so the output is the input
    # scaled by the first weight.
    net = ImageAdaptive3DLUT().eval()
    with torch.no_grad():
        net.predictor.model[-1].weight.zero_()
        net.predictor.model[-1].bias.copy_(torch.tensor([1.0, 0.3, -0.2]))
        assert (net(image) - image).abs().max().item() < 1e-6


def test_predict_then_apply_is_forward_at_any_size() -> None:
    torch.manual_seed(0)
    net = build_network({"type": "ImageAdaptive3DLUT", "num_luts": 3, "lut_size": 17}).eval()
    with torch.no_grad():
        net.basis_luts.add_(0.05 * torch.randn_like(net.basis_luts))
    image = torch.rand(2, 3, 70, 90)
    lut = net.predict_lut(image)
    assert lut.shape == (2, 3, 17, 17, 17)
    assert net.mix_weights is not None and net.mix_weights.shape == (2, 3)
    want = torch.einsum("bn,nkijl->bkijl", net.mix_weights, net.basis_luts)
    assert torch.allclose(lut, want, atol=1e-6)
    assert torch.equal(net.apply_lut(image, lut), net(image))
    # Global context from a small copy, local apply: a crop with the whole photo's LUT is the
    # crop of the whole output.
    assert torch.allclose(net.apply_lut(image[..., 10:30, 5:50], lut), net(image)[..., 10:30, 5:50])


def test_gradients_reach_luts_and_predictor() -> None:
    net = ImageAdaptive3DLUT(lut_size=9).train()
    net(torch.rand(1, 3, 40, 40)).square().mean().backward()
    assert net.basis_luts.grad is not None and net.basis_luts.grad.abs().sum() > 0
    assert all(p.grad is not None for p in net.predictor.parameters())


def test_bad_shapes_name_the_argument() -> None:
    with pytest.raises(ValueError, match="lut must be"):
        apply_lut(torch.rand(1, 3, 4, 4), torch.rand(2, 3, 5, 5, 5))
    with pytest.raises(ValueError, match="image must be"):
        apply_lut(torch.rand(1, 4, 4, 4), torch.rand(1, 3, 5, 5, 5))


def test_onnx_needs_opset_20_and_matches_in_onnxruntime(
    tmp_path: Path, fivek_pairs: List[Tuple[str, np.ndarray, np.ndarray]]
) -> None:
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    net = ImageAdaptive3DLUT(lut_size=17).eval()
    with torch.no_grad():
        net.basis_luts.add_(0.05 * torch.randn_like(net.basis_luts))
        net.predictor.model[-1].weight.normal_(0, 0.01)
    _, source, _ = fivek_pairs[2]
    photo = torch.from_numpy(np.ascontiguousarray(source.transpose(2, 0, 1)))[None]
    # GridSample takes 5-D inputs from ONNX opset 20 on; torch's exporter refuses it below.
    with pytest.raises(Exception, match="GridSample with 5D"):
        torch.onnx.export(net, (photo,), tmp_path / "old.onnx", opset_version=19, dynamo=False)
    path = tmp_path / "lut3d.onnx"
    torch.onnx.export(
        net,
        (photo,),
        path,
        opset_version=20,
        dynamo=False,
        input_names=["image"],
        output_names=["enhanced"],
        dynamic_axes={"image": {2: "h", 3: "w"}, "enhanced": {2: "h", 3: "w"}},
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for image in (photo, photo[..., :200, :150]):
        with torch.no_grad():
            want = net(image).numpy()
        got = session.run(None, {"image": image.numpy()})[0]
        assert np.abs(got - want).max() < 1e-5
