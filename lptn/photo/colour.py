"""Colour management with littleCMS: photos in other RGB spaces to sRGB and back.

The LPTN network was trained on sRGB photos, so an Adobe RGB, ProPhoto RGB or Display P3
photo is converted to sRGB before it is enhanced. 8-bit photos go through littleCMS (Pillow's
ImageCms, relative colorimetric intent, no black-point compensation). Pillow has no 16-bit RGB
mode, so 16-bit photos with a matrix/TRC profile (all the RGB working spaces above) are
converted in float64 from the profile's own matrix and tone curves, the same relative
colorimetric conversion littleCMS makes for such profiles (:class:`MatrixShaper`); the tests
check the two against each other. Colours outside sRGB are clipped to it.
"""

from __future__ import annotations

import functools
import io
import struct
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageCms

from lptn.photo.errors import PhotoError

INTENT = ImageCms.Intent.RELATIVE_COLORIMETRIC


# littleCMS stamps a profile it builds with the current time (ICC header bytes 24-35). A fixed
# date makes outputs identical byte for byte across runs and processes (lptn-enhance and
# lptn-serve); the profile ID (bytes 84-99) is zero, so no checksum covers the date.
SRGB_PROFILE_DATE = (2000, 1, 1, 0, 0, 0)


@functools.cache
def srgb_profile_bytes() -> bytes:
    """The sRGB ICC profile that littleCMS builds, as embedded in converted outputs, dated
    :data:`SRGB_PROFILE_DATE`."""
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    if any(icc[84:100]):  # an MD5 profile ID would cover the date: keep the profile as built
        return icc
    return icc[:24] + struct.pack(">6H", *SRGB_PROFILE_DATE) + icc[36:]


# Adobe RGB (1998) as published (Adobe RGB (1998) Color Image Encoding, 2005): primaries and
# white point as CIE xy chromaticities, gamma 563/256. Cameras' "Adobe RGB" (DCF option colour
# space) photos often carry no profile; :func:`adobe_rgb_profile_bytes` builds one from these.
ADOBE_RGB_PRIMARIES = ((0.64, 0.33), (0.21, 0.71), (0.15, 0.06))
D65_XY = (0.3127, 0.3290)
ADOBE_RGB_GAMMA_U8F8 = 563  # u8Fixed8Number: 563/256 = 2.19921875
ICC_D50 = (0.9642, 1.0, 0.8249)  # the ICC profile connection space's white
_BRADFORD = np.array(
    [[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]]
)
ADOBE_RGB_DESCRIPTION = "Adobe RGB (1998)-compatible, built by lptn (DCF option colour space)"


def _xy_to_xyz(x: float, y: float) -> np.ndarray:
    return np.array([x / y, 1.0, (1.0 - x - y) / y])


@functools.cache
def adobe_rgb_profile_bytes() -> bytes:
    """An ICC v4 matrix/TRC display profile for Adobe RGB (1998), built from the published
    primaries, D65 white and gamma 563/256 (Bradford-adapted to the D50 connection space, as
    the ICC specifies), dated :data:`SRGB_PROFILE_DATE`. Its colorants agree with Adobe's own
    profile to 1/65536."""
    primaries = np.stack([_xy_to_xyz(x, y) for x, y in ADOBE_RGB_PRIMARIES], axis=1)
    white = _xy_to_xyz(*D65_XY)
    to_xyz = primaries * np.linalg.solve(primaries, white)  # columns: R, G, B at full scale
    cone_ratio = (_BRADFORD @ np.array(ICC_D50)) / (_BRADFORD @ white)
    adapt = np.linalg.inv(_BRADFORD) @ np.diag(cone_ratio) @ _BRADFORD  # D65 -> D50
    colorants = adapt @ to_xyz
    trc = b"curv" + bytes(4) + struct.pack(">IHxx", 1, ADOBE_RGB_GAMMA_U8F8)
    tags = [
        (b"desc", _mluc(ADOBE_RGB_DESCRIPTION)),
        (b"cprt", _mluc("No copyright, use freely (CC0)")),
        (b"wtpt", _xyz_tag(ICC_D50)),
        (b"chad", b"sf32" + bytes(4) + _s15f16(adapt.ravel())),
        (b"rXYZ", _xyz_tag(colorants[:, 0])),
        (b"gXYZ", _xyz_tag(colorants[:, 1])),
        (b"bXYZ", _xyz_tag(colorants[:, 2])),
        (b"rTRC", trc),
        (b"gTRC", trc),
        (b"bTRC", trc),
    ]
    return _icc_profile(tags)


def _s15f16(values: np.ndarray) -> bytes:
    """ICC s15Fixed16Number values, big-endian."""
    return struct.pack(f">{len(values)}i", *(int(round(v * 65536.0)) for v in values))


def _xyz_tag(xyz: Sequence[float]) -> bytes:
    return b"XYZ " + bytes(4) + _s15f16(np.asarray(xyz, dtype=np.float64))


def _mluc(text: str) -> bytes:
    """A multiLocalizedUnicodeType with one record (en-US)."""
    utf16 = text.encode("utf-16-be")
    return (
        b"mluc" + bytes(4) + struct.pack(">II2s2sII", 1, 12, b"en", b"US", len(utf16), 28) + utf16
    )


def _icc_profile(tags: List[Tuple[bytes, bytes]]) -> bytes:
    """A v4.3 RGB display (``mntr``) profile with an XYZ connection space holding ``tags``;
    tags with the same data share it (the three TRCs)."""
    table_size = 4 + 12 * len(tags)
    offset = 128 + table_size
    entries: List[bytes] = []
    blobs: List[bytes] = []
    placed: Dict[bytes, int] = {}
    for sig, data in tags:
        if data not in placed:
            placed[data] = offset
            padded = data + bytes(-len(data) % 4)  # tag data start on 4-byte boundaries
            blobs.append(padded)
            offset += len(padded)
        entries.append(struct.pack(">4sII", sig, placed[data], len(data)))
    body = struct.pack(">I", len(tags)) + b"".join(entries) + b"".join(blobs)
    header = struct.pack(
        ">I4sI4s4s4s6H4s4sI4s4s8sI12s4s16s28s",
        128 + len(body),
        b"\0\0\0\0",  # preferred CMM: none
        0x04300000,  # version 4.3
        b"mntr",
        b"RGB ",
        b"XYZ ",
        *SRGB_PROFILE_DATE,
        b"acsp",
        b"\0\0\0\0",  # platform
        0,  # flags
        b"\0\0\0\0",  # device manufacturer
        b"\0\0\0\0",  # device model
        bytes(8),  # device attributes
        0,  # rendering intent: perceptual
        _s15f16(np.array(ICC_D50)),
        b"lptn",  # creator
        bytes(16),  # profile ID: not computed
        bytes(28),
    )
    return header + body


def _profile(icc: bytes) -> ImageCms.ImageCmsProfile:
    try:
        return ImageCms.ImageCmsProfile(io.BytesIO(icc))
    except (OSError, ImageCms.PyCMSError) as err:
        raise PhotoError(f"the embedded colour profile cannot be read ({err})") from err


def profile_space(icc: bytes) -> str:
    """The profile's colour space, stripped: ``'RGB'``, ``'GRAY'``, ``'CMYK'``..."""
    return str(_profile(icc).profile.xcolor_space).strip()


def profile_name(icc: bytes) -> str:
    """The profile's description (``'Adobe RGB (1998)'``), for messages."""
    return str(_profile(icc).profile.profile_description or "unnamed profile").strip()


def is_srgb(icc: Optional[bytes]) -> bool:
    """True for no profile (untagged photos are sRGB) or a profile that describes itself as
    sRGB (``sRGB IEC61966-2.1``, ``sRGB built-in``...)."""
    if not icc:
        return True
    return icc == srgb_profile_bytes() or "srgb" in profile_name(icc).lower()


def convert_rgb(rgb: np.ndarray, src_icc: bytes, dst_icc: bytes) -> np.ndarray:
    """``HxWx3`` uint8/uint16 RGB from the ``src_icc`` space to the ``dst_icc`` space, same
    dtype (16-bit stays 16-bit)."""
    if rgb.dtype == np.uint8:
        src, dst = _profile(src_icc), _profile(dst_icc)
        try:
            transform = ImageCms.buildTransform(src, dst, "RGB", "RGB", renderingIntent=INTENT)
            out = ImageCms.applyTransform(Image.fromarray(rgb, "RGB"), transform)
        except ImageCms.PyCMSError as err:
            raise PhotoError(f"cannot convert between these colour profiles ({err})") from err
        assert out is not None
        return np.asarray(out)
    if rgb.dtype == np.uint16:
        return _convert_rgb16(rgb, src_icc, dst_icc)
    raise TypeError(f"convert_rgb: expected uint8 or uint16, got {rgb.dtype}")


def to_srgb(rgb: np.ndarray, icc: Optional[bytes]) -> np.ndarray:
    """``rgb`` tagged with ``icc`` -> sRGB (unchanged when it already is sRGB)."""
    if is_srgb(icc):
        return rgb
    assert icc is not None
    return convert_rgb(rgb, icc, srgb_profile_bytes())


def from_srgb(rgb: np.ndarray, icc: Optional[bytes]) -> np.ndarray:
    """sRGB ``rgb`` -> the space of ``icc`` (unchanged when that is sRGB)."""
    if is_srgb(icc):
        return rgb
    assert icc is not None
    return convert_rgb(rgb, srgb_profile_bytes(), icc)


def _convert_rgb16(rgb: np.ndarray, src_icc: bytes, dst_icc: bytes) -> np.ndarray:
    src, dst = _matrix_shaper(src_icc), _matrix_shaper(dst_icc)
    to_linear = src.decode_table()  # 65536 entries: each 16-bit code's linear RGB
    matrix = np.linalg.inv(dst.matrix) @ src.matrix  # linear source RGB -> linear dest RGB
    out = np.empty_like(rgb)
    for r in range(0, rgb.shape[0], _ROWS):
        block = rgb[r : r + _ROWS]
        lin = np.stack([to_linear[c][block[:, :, c]] for c in range(3)], axis=-1)
        lin = np.clip(lin @ matrix.T, 0.0, 1.0)
        encoded = np.stack([dst.encode(c, lin[:, :, c]) for c in range(3)], axis=-1)
        out[r : r + _ROWS] = np.round(encoded * 65535.0).astype(np.uint16)
    return out


class MatrixShaper:
    """A matrix/TRC RGB profile (Adobe RGB, ProPhoto RGB, Display P3, sRGB): three tone
    curves to linear light and the matrix to the D50 PCS, read from the ICC data.

    Used for 16-bit data, in float64: Pillow's ImageCms has no 16-bit RGB mode, and littleCMS
    at 16 bits (through libvips) resamples the transform into a lookup grid whose error near
    black reached 2 steps of 8 bits on FiveK photos (measured).
    """

    def __init__(self, matrix: np.ndarray, curves: Tuple[Curve, Curve, Curve]) -> None:
        self.matrix = matrix
        self.curves = curves
        # Inverse curves as tables over the cube root of linear light: gamma curves are steep
        # near black, and u = lin**(1/3) spreads the entries there (enc = u**(3/gamma) is
        # smooth in u). Each table comes from a dense sampling of the forward curve.
        grid = np.linspace(0.0, 1.0, _INVERSE_SAMPLES)
        u = np.linspace(0.0, 1.0, _ENCODE_ENTRIES)
        self._encode_tables = [
            np.interp(u**3, np.maximum.accumulate(c(grid)), grid) for c in curves
        ]

    @classmethod
    def from_icc(cls, icc: bytes) -> MatrixShaper:
        profile = _profile(icc).profile
        if not profile.is_matrix_shaper or str(profile.xcolor_space).strip() != "RGB":
            raise PhotoError(
                f"16-bit photos with the colour profile {profile_name(icc)!r} (not an RGB "
                "matrix/TRC profile) are not supported; save the photo in 8 bits or in sRGB"
            )
        columns = [profile.red_colorant, profile.green_colorant, profile.blue_colorant]
        if any(c is None for c in columns):
            raise PhotoError(f"the colour profile {profile_name(icc)!r} has no colorants")
        matrix = np.array([c[0] for c in columns if c is not None], dtype=np.float64).T
        tags = _tag_table(icc)
        curves = tuple(_read_curve(icc, tags, sig) for sig in (b"rTRC", b"gTRC", b"bTRC"))
        return cls(matrix, curves)  # type: ignore[arg-type]

    def decode_table(self) -> List[np.ndarray]:
        """Per channel, the linear value of each 16-bit code (65536 float64 entries)."""
        codes = np.arange(65536, dtype=np.float64) / 65535.0
        return [np.clip(c(codes), 0.0, 1.0) for c in self.curves]

    def encode(self, channel: int, linear: np.ndarray) -> np.ndarray:
        """Linear values in [0, 1] -> encoded values in [0, 1] (the inverse tone curve)."""
        table = self._encode_tables[channel]
        pos = np.cbrt(linear) * (len(table) - 1)
        i = np.minimum(pos.astype(np.int64), len(table) - 2)
        frac = pos - i
        return table[i] + frac * (table[i + 1] - table[i])


@functools.lru_cache(maxsize=8)
def _matrix_shaper(icc: bytes) -> MatrixShaper:
    # building the inverse tables takes a moment; a photo library reuses a few profiles
    return MatrixShaper.from_icc(icc)


Curve = Callable[[np.ndarray], np.ndarray]
_ROWS = 128
_INVERSE_SAMPLES = 1 << 20
_ENCODE_ENTRIES = (1 << 16) + 1


def _tag_table(icc: bytes) -> Dict[bytes, Tuple[int, int]]:
    """ICC tag signature -> (offset, size), from the tag table after the 128-byte header."""
    (count,) = struct.unpack_from(">I", icc, 128)
    tags = {}
    for i in range(count):
        sig, offset, size = struct.unpack_from(">4sII", icc, 132 + 12 * i)
        tags[sig] = (offset, size)
    return tags


def _read_curve(icc: bytes, tags: Dict[bytes, Tuple[int, int]], sig: bytes) -> Curve:
    """The tone curve of an ICC ``curv`` or ``para`` tag, encoded [0, 1] -> linear [0, 1]."""
    if sig not in tags:
        raise PhotoError(f"the colour profile has no {sig.decode()} tone curve")
    offset, _ = tags[sig]
    kind = icc[offset : offset + 4]
    if kind == b"curv":
        (n,) = struct.unpack_from(">I", icc, offset + 8)
        if n == 0:
            return lambda x: x
        if n == 1:
            gamma = struct.unpack_from(">H", icc, offset + 12)[0] / 256.0
            return lambda x: np.power(x, gamma)
        table = np.array(struct.unpack_from(f">{n}H", icc, offset + 12), dtype=np.float64)
        table /= 65535.0
        points = np.linspace(0.0, 1.0, n)
        return lambda x: np.interp(x, points, table)
    if kind == b"para":
        (function,) = struct.unpack_from(">H", icc, offset + 8)
        n_params = {0: 1, 1: 3, 2: 4, 3: 5, 4: 7}.get(function)
        if n_params is None:
            raise PhotoError(f"unknown parametric curve type {function} in the colour profile")
        raw = struct.unpack_from(f">{n_params}i", icc, offset + 12)
        return _parametric(function, [v / 65536.0 for v in raw])
    raise PhotoError(f"unsupported tone curve type {kind!r} in the colour profile")


def _parametric(function: int, params: List[float]) -> Curve:
    """ICC parametric curve types 0-4 (ICC.1, parametricCurveType); absent parameters are 0."""
    g, a, b, c, d, e, f = (list(params) + [0.0] * 7)[:7]
    if function == 0:
        return lambda x: np.power(x, g)
    if function in (1, 2):  # type 1 is type 2 with c = 0
        start = -b / a

        def curve12(x: np.ndarray) -> np.ndarray:
            return np.where(x >= start, np.power(np.maximum(a * x + b, 0.0), g) + c, c)

        return curve12

    def curve34(x: np.ndarray) -> np.ndarray:  # type 3 is type 4 with e = f = 0
        return np.where(x >= d, np.power(np.maximum(a * x + b, 0.0), g) + e, c * x + f)

    return curve34
