"""Readers of measured X-ray microscopy data, returning images with energy and pixel size.

Formats: two-energy image pairs (TIFF, PNG, NPY, HDF5); ALS STXM stacks (``.hdr`` text header
plus one tab-separated ``.xim`` per energy); Xradia TXM frames (``.xrm``, OLE2 compound files);
3D volumes (TIFF stack, HDF5). Energies are in eV and pixel sizes in m.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nmcfem.errors import AnalysisError

MICROMETRE = 1e-6
#: Xradia data-type codes of ``ImageInfo/DataType`` (5 = uint16, 10 = float32)
XRM_DTYPES = {5: np.uint16, 10: np.float32}
#: energy in an Xradia file name, e.g. ``..._08324.0_eV_...``
XRM_NAME_ENERGY = re.compile(r"_(\d+(?:\.\d+)?)_eV")


@dataclass
class Frame:
    """One 2D image with its photon energy (eV) and pixel size (m)."""

    image: np.ndarray
    energy: float | None
    pixel_size: float | None
    source: str
    meta: dict = field(default_factory=dict)


def _require(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise AnalysisError(f"measured file '{path}' not found: check the path")
    return path


def read_image(path: str | Path, energy: float | None = None, pixel_size: float | None = None,
               dataset: str | None = None) -> Frame:
    """Read one 2D image (TIFF, PNG, NPY or HDF5 dataset) as float.

    Parameters
    ----------
    path: image file.
    energy: photon energy (eV) of the image, if known.
    pixel_size: pixel size (m), if known.
    dataset: HDF5 dataset name (default: the first 2D dataset).
    """
    path = _require(path)
    suffix = path.suffix.lower()
    try:
        if suffix in (".tif", ".tiff"):
            import tifffile

            img = tifffile.imread(path)
        elif suffix == ".npy":
            img = np.load(path)
        elif suffix in (".h5", ".hdf5", ".cxi"):
            img = _read_h5_array(path, dataset, ndim=2)
        elif suffix in (".png", ".jpg", ".jpeg"):
            from skimage import io as skio

            img = skio.imread(path)
            if img.ndim == 3:  # colour: use the luminance
                img = img[..., :3].mean(axis=2)
        else:
            raise AnalysisError(f"'{path}': unknown image format '{suffix}'; use TIFF, PNG, NPY "
                                f"or HDF5")
    except AnalysisError:
        raise
    except Exception as exc:  # corrupt files raise many kinds of errors
        raise AnalysisError(f"'{path}' could not be read as an image ({type(exc).__name__}: "
                            f"{exc}); is the file complete?") from None
    img = np.asarray(img, dtype=float)
    if img.ndim != 2 or img.size == 0:
        raise AnalysisError(f"'{path}' could not be read as a 2D image (got shape {img.shape}); "
                            f"is the file complete?")
    return Frame(img, energy, pixel_size, str(path))


def _read_h5_array(path: Path, dataset: str | None, ndim: int) -> np.ndarray:
    import h5py

    with h5py.File(path, "r") as f:
        if dataset is not None:
            if dataset not in f:
                raise AnalysisError(f"'{path}': no dataset '{dataset}'")
            return np.asarray(f[dataset])
        found = []
        f.visititems(lambda name, obj: found.append(name)
                     if isinstance(obj, h5py.Dataset) and obj.ndim == ndim else None)
        if not found:
            raise AnalysisError(f"'{path}': no {ndim}D dataset inside; name it with dataset=")
        return np.asarray(f[found[0]])


# --- ALS STXM -----------------------------------------------------------------------------------

def _axis_points(text: str, name: str) -> np.ndarray:
    match = re.search(r'Name = "' + re.escape(name) + r'"[^}]*?Points = \((\d+),([^)]*)\)', text,
                      re.S)
    if not match:
        raise AnalysisError(f"STXM header: no '{name}' axis with Points; is it an ALS .hdr file?")
    count = int(match.group(1))
    values = np.array([float(v) for v in match.group(2).replace("\n", " ").split(",") if v.strip()])
    if len(values) != count:
        raise AnalysisError(f"STXM header: axis '{name}' declares {count} points but lists "
                            f"{len(values)}")
    return values


def read_stxm(header: str | Path) -> list[Frame]:
    """Read an ALS STXM image stack: energies and pixel axes from the ``.hdr`` header, one
    tab-separated ``.xim`` image per energy (rows = Sample Y), in header order.

    Parameters
    ----------
    header: the ``.hdr`` file; the images are ``<stem>_a000.xim``, ``_a001.xim``, ... or, when
        those are absent, the ``<stem>_a*.xim`` files in sorted order.
    """
    header = _require(header)
    text = header.read_text(errors="replace")
    energies = _axis_points(text, "Energy")
    x = _axis_points(text, "Sample X")
    y = _axis_points(text, "Sample Y")
    xims = sorted(header.parent.glob(f"{header.stem}_a*.xim"))
    if len(xims) != len(energies):
        raise AnalysisError(f"STXM stack '{header}': the header lists {len(energies)} energies "
                            f"but {len(xims)} .xim images were found beside it; each energy "
                            f"needs its image")
    pixel = float(np.mean(np.diff(x))) * MICROMETRE
    frames = []
    for energy, xim in zip(energies, xims):
        try:
            img = np.loadtxt(xim, dtype=float)
        except Exception as exc:
            raise AnalysisError(f"STXM image '{xim}' could not be read ({exc}); is it a "
                                f"tab-separated .xim file?") from None
        if img.shape != (len(y), len(x)):
            raise AnalysisError(f"STXM image '{xim}' has shape {img.shape} but the header "
                                f"declares {len(y)} x {len(x)} (Sample Y x Sample X)")
        frames.append(Frame(img, float(energy), pixel, str(xim),
                            {"x_um": x, "y_um": y, "header": str(header)}))
    return frames


# --- Xradia TXM ---------------------------------------------------------------------------------

def _ole_scalar(ole, stream: str, dtype: str):
    if not ole.exists(stream):
        return None
    data = ole.openstream(stream).read()
    return np.frombuffer(data, dtype=dtype)[0] if len(data) >= np.dtype(dtype).itemsize else None


def read_xrm(path: str | Path) -> Frame:
    """Read an Xradia ``.xrm`` frame: image, energy (eV) and nominal pixel size (m).

    Some beamlines (SSRL 6-2c) store 0 in ``ImageInfo/Energy``; the energy is then taken from
    the file name (``..._08324.0_eV_...``), recorded in ``meta["energy_source"]`` and warned
    about. The stored pixel size is nominal: on a TXM it scales with energy.
    """
    import olefile

    path = _require(path)
    if not olefile.isOleFile(str(path)):
        raise AnalysisError(f"'{path}' is not an Xradia .xrm file (not an OLE2 compound file)")
    try:
        with olefile.OleFileIO(str(path)) as ole:
            width = _ole_scalar(ole, "ImageInfo/ImageWidth", "<i4")
            height = _ole_scalar(ole, "ImageInfo/ImageHeight", "<i4")
            code = _ole_scalar(ole, "ImageInfo/DataType", "<i4")
            energy = _ole_scalar(ole, "ImageInfo/Energy", "<f4")
            pixel_um = _ole_scalar(ole, "ImageInfo/PixelSize", "<f4")
            if width is None or height is None or not ole.exists("ImageData1/Image1"):
                raise AnalysisError(f"'{path}': no image (ImageInfo/ImageWidth, ImageHeight or "
                                    f"ImageData1/Image1 missing)")
            dtype = XRM_DTYPES.get(int(code) if code is not None else 5)
            if dtype is None:
                raise AnalysisError(f"'{path}': unsupported Xradia data type code {code}")
            raw = ole.openstream("ImageData1/Image1").read()
    except AnalysisError:
        raise
    except Exception as exc:
        raise AnalysisError(f"'{path}' could not be read ({type(exc).__name__}: {exc}); is the "
                            f"file complete?") from None
    expected = int(width) * int(height) * np.dtype(dtype).itemsize
    if len(raw) < expected:
        raise AnalysisError(f"'{path}': image data holds {len(raw)} bytes, {width} x {height} "
                            f"pixels need {expected}; the file is truncated")
    img = np.frombuffer(raw[:expected], dtype=dtype).reshape(int(height), int(width)).astype(float)
    meta = {"energy_source": "metadata"}
    if energy is None or not np.isfinite(energy) or energy <= 0:
        match = XRM_NAME_ENERGY.search(path.name)
        if not match:
            raise AnalysisError(f"'{path}': ImageInfo/Energy is {energy} and the file name "
                                f"holds no '_<energy>_eV' part; give the energy explicitly")
        energy = float(match.group(1))
        meta["energy_source"] = "filename"
        warnings.warn(f"{path.name}: ImageInfo/Energy holds 0; using {energy} eV from the file "
                      f"name", stacklevel=2)
    pixel = float(pixel_um) * MICROMETRE if pixel_um else None
    meta["pixel_size_note"] = "nominal (TXM magnification scales with energy)"
    return Frame(img, float(energy), pixel, str(path), meta)


# --- 3D volumes ---------------------------------------------------------------------------------

def read_volume(path: str | Path, dataset: str | None = None) -> np.ndarray:
    """Read a 3D volume (TIFF stack or HDF5 dataset) as a float array (z, y, x)."""
    path = _require(path)
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            vol = tifffile.imread(path)
        elif path.suffix.lower() in (".h5", ".hdf5"):
            vol = _read_h5_array(path, dataset, ndim=3)
        elif path.suffix.lower() == ".npy":
            vol = np.load(path)
        else:
            raise AnalysisError(f"'{path}': unknown volume format; use a TIFF stack, HDF5 or NPY")
    except AnalysisError:
        raise
    except Exception as exc:
        raise AnalysisError(f"'{path}' could not be read as a volume ({exc})") from None
    vol = np.asarray(vol, dtype=float)
    if vol.ndim != 3:
        raise AnalysisError(f"'{path}': expected a 3D volume, got shape {vol.shape}")
    return vol


def read_measured(paths: list[str | Path]) -> list[Frame]:
    """Read the measured inputs of a comparison: one STXM header, or two images/frames."""
    paths = [Path(p) for p in paths]
    if len(paths) == 1 and paths[0].suffix.lower() == ".hdr":
        return read_stxm(paths[0])
    frames = []
    for p in paths:
        frames.append(read_xrm(p) if p.suffix.lower() == ".xrm" else read_image(p))
    return frames
