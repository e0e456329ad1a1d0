from __future__ import annotations

import json

import numpy as np
import pytest
import scibind
import tifffile
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from safetensors.numpy import save_file
from scibind.builtin.readers import ImageReader, TextReader, VectorReader
from scibind.data.readers import resolve_reader
from scibind.errors import ReadError


def test_registered_readers_build_these_classes():
    assert isinstance(scibind.create_reader("core/text"), TextReader)
    assert isinstance(scibind.create_reader("core/vector"), VectorReader)
    assert isinstance(scibind.create_reader("core/image", size=(8, 8)), ImageReader)
    assert resolve_reader("x/slide.PNG").name == "core/image"
    assert resolve_reader("x/feat.npy").name == "core/vector"


# --- text -------------------------------------------------------------------------------------------------


def test_text_inline_and_file(tmp_path):
    (tmp_path / "r.txt").write_text("Pleural effusion.\n", encoding="utf-8")
    reader = TextReader()
    inline = reader.read("  a caption ", record_id="r1")
    assert inline.data == "a caption" and inline.meta == {"source": "inline", "record": "r1"}
    from_file = reader.read("r.txt", record_id="r2", base_dir=tmp_path)
    assert from_file.data == "Pleural effusion."
    assert from_file.meta["source"] == str(tmp_path / "r.txt") and from_file.id == "r2"
    assert TextReader(strip=False).read("r.txt", base_dir=tmp_path).data == "Pleural effusion.\n"


def test_text_errors(tmp_path):
    (tmp_path / "empty.txt").write_text("  \n", encoding="utf-8")
    (tmp_path / "latin.txt").write_bytes("caf\xe9".encode("latin-1"))
    reader = TextReader()
    with pytest.raises(ReadError, match="empty") as info:
        reader.read("empty.txt", record_id="e", base_dir=tmp_path)
    assert info.value.record == "e" and info.value.path == str(tmp_path / "empty.txt")
    with pytest.raises(ReadError, match="not UTF-8"):
        reader.read("latin.txt", base_dir=tmp_path)
    with pytest.raises(ReadError, match="file not found"):
        reader.read("absent.txt", base_dir=tmp_path)
    with pytest.raises(ReadError, match="must be a string"):
        reader.read(3.0, record_id="n")


@settings(max_examples=60, deadline=None)
@given(
    st.text(min_size=1).filter(
        lambda s: s.strip() and "\n" not in s and not s.strip().lower().endswith(".txt")
    )
)
def test_text_inline_property(text):
    assert TextReader().read(text).data == text.strip()


# --- vectors ----------------------------------------------------------------------------------------------


def test_vector_inline_forms():
    reader = VectorReader()
    expected = torch.tensor([1.0, -2.5, 3.0])
    for value in (
        [1, -2.5, 3],
        (1, -2.5, 3),
        np.array([1, -2.5, 3]),
        "[1, -2.5, 3]",
        torch.tensor([1, -2.5, 3]),
    ):
        sample = reader.read(value, record_id="r")
        assert sample.data.dtype == torch.float32 and torch.equal(sample.data, expected)
        assert sample.meta == {"source": "inline", "record": "r", "dim": 3}


def test_vector_files(tmp_path):
    np.save(tmp_path / "v.npy", np.arange(4, dtype=np.float64))
    save_file({"x": np.arange(5, dtype=np.float32)}, str(tmp_path / "one.safetensors"))
    save_file({"x": np.zeros(2, np.float32), "y": np.ones(3, np.float32)}, str(tmp_path / "two.safetensors"))
    reader = VectorReader()
    npy = reader.read("v.npy", record_id="a", base_dir=tmp_path)
    assert npy.data.tolist() == [0.0, 1.0, 2.0, 3.0] and npy.meta["source"] == str(tmp_path / "v.npy")
    assert reader.read(str(tmp_path / "one.safetensors")).data.tolist() == [0, 1, 2, 3, 4]
    assert VectorReader(key="y").read("two.safetensors", base_dir=tmp_path).data.tolist() == [1, 1, 1]
    with pytest.raises(ReadError, match=r"expected one tensor, found \['x', 'y'\]"):
        reader.read("two.safetensors", base_dir=tmp_path)


def test_vector_never_unpickles(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ReadError, match="cannot load the array"):
        VectorReader().read("obj.npy", base_dir=tmp_path, record_id="p")


@pytest.mark.parametrize(
    "value, match",
    [
        ([1.0, float("nan"), float("inf")], "2 non-finite value"),
        ([1.0, None], "non-finite"),
        ("[1, 2", "not a JSON array"),
        ('["a", "b"]', "not a JSON array"),
        ("[[1, 2], [3, 4]]", r"1-D vector, got shape \(2, 2\)"),
        ("3.5", "cannot read '3.5' as a vector"),
        (3.5, "expected a vector"),
    ],
)
def test_vector_bad_values_name_the_record(value, match):
    with pytest.raises(ReadError, match=match) as info:
        VectorReader().read(value, record_id="rec-9")
    assert info.value.record == "rec-9" and "record 'rec-9'" in str(info.value)


def test_vector_dim_check():
    with pytest.raises(ReadError, match="expected 4 values, got 3"):
        VectorReader(dim=4).read([1, 2, 3])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=1, max_size=20))
def test_vector_json_roundtrip_property(values):
    out = VectorReader().read(json.dumps(values)).data
    assert out.tolist() == values


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(width=32), min_size=1, max_size=20))
def test_vector_rejects_exactly_the_non_finite(values):
    finite = all(np.isfinite(values))
    try:
        VectorReader().read(values)
    except ReadError:
        assert not finite
    else:
        assert finite


# --- images -----------------------------------------------------------------------------------------------


def test_image_png_rgb_and_grey(tmp_path):
    rgb = np.zeros((5, 7, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    rgb[1, 2] = (10, 20, 30)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    sample = ImageReader().read("rgb.png", base_dir=tmp_path, record_id="i")
    assert sample.data.shape == (3, 5, 7) and sample.data.dtype == torch.float32
    assert sample.data[:, 1, 2].tolist() == pytest.approx([10 / 255, 20 / 255, 30 / 255])
    assert sample.data[0, 0, 0].item() == 1.0
    assert sample.meta == {
        "source": str(tmp_path / "rgb.png"),
        "record": "i",
        "dtype": "uint8",
        "scaled": True,
        "original_size": (5, 7),
    }


def test_image_palette_and_16bit_png(tmp_path):
    Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4)).convert("P").save(tmp_path / "p.png")
    assert ImageReader().read(str(tmp_path / "p.png")).data.shape == (3, 3, 4)
    deep = np.array([[0, 65535], [1000, 30000]], dtype=np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    sample = ImageReader().read(str(tmp_path / "deep.png"))
    assert sample.meta["dtype"] == "uint16"
    np.testing.assert_allclose(sample.data[0].numpy(), deep / 65535.0, rtol=1e-6)


def test_image_tiff_layouts_and_resize(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (6, 8, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    planes = np.random.default_rng(1).random((4, 6, 8)).astype(np.float32)
    tifffile.imwrite(tmp_path / "planes.tiff", planes)
    out = ImageReader().read("rgb.tif", base_dir=tmp_path).data
    assert out.shape == (3, 6, 8) and torch.allclose(out, torch.from_numpy(rgb).permute(2, 0, 1) / 255.0)
    floats = ImageReader().read("planes.tiff", base_dir=tmp_path)
    assert floats.meta["scaled"] is False and torch.equal(floats.data, torch.from_numpy(planes))
    small = ImageReader(size=(3, 4)).read("planes.tiff", base_dir=tmp_path)
    assert small.data.shape == (4, 3, 4) and small.meta["original_size"] == (6, 8)
    assert small.data.mean().item() == pytest.approx(float(planes.mean()), abs=0.02)


def test_image_channel_stack_from_field_dict(tmp_path):
    for i in range(3):
        tifffile.imwrite(tmp_path / f"ch{i}.tif", np.full((4, 5), 1000 * (i + 1), dtype=np.uint16))
    sample = ImageReader().read({"dna": "ch0.tif", "rna": "ch1.tif", "agp": "ch2.tif"}, base_dir=tmp_path)
    assert sample.data.shape == (3, 4, 5) and sample.meta["channels"] == ["dna", "rna", "agp"]
    assert sample.data[:, 0, 0].tolist() == pytest.approx([1000 / 65535, 2000 / 65535, 3000 / 65535])
    tifffile.imwrite(tmp_path / "odd.tif", np.zeros((3, 3), dtype=np.uint16))
    with pytest.raises(ReadError, match="channel files differ"):
        ImageReader().read(["ch0.tif", "odd.tif"], base_dir=tmp_path)
    with pytest.raises(ReadError, match="channel file is missing"):
        ImageReader().read({"dna": "ch0.tif", "rna": None}, base_dir=tmp_path)


def test_image_errors(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"not a png")
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((2, 3, 4, 5), dtype=np.uint8))
    with pytest.raises(ReadError, match="cannot read image") as info:
        ImageReader().read("broken.png", base_dir=tmp_path, record_id="b")
    assert info.value.path == str(tmp_path / "broken.png") and info.value.record == "b"
    with pytest.raises(ReadError, match="expected a 2D image"):
        ImageReader().read("stack.tif", base_dir=tmp_path)
    with pytest.raises(ReadError, match="relative paths resolve against the manifest folder"):
        ImageReader().read("nope.png", base_dir=tmp_path)
    with pytest.raises(ValueError, match="size must be"):
        ImageReader(size=(0, 3))


def test_real_chest_xrays(shared_data_dir):
    files = sorted((shared_data_dir / "medical" / "cxr" / "png").glob("*.png"))
    assert len(files) == 10
    reader = ImageReader()
    sample = reader.read(str(files[0]), record_id=files[0].stem)
    with Image.open(files[0]) as image:
        pixels = np.asarray(image)
    assert sample.data.shape == (1, *pixels.shape) and sample.meta["dtype"] == "uint8"
    assert sample.data.max().item() == pixels.max() / 255.0
    resized = ImageReader(size=(64, 64)).read(str(files[1]))
    assert resized.data.shape == (1, 64, 64) and 0.0 <= resized.data.min() <= resized.data.max() <= 1.0


def test_real_cell_painting_field(shared_data_dir):
    files = sorted((shared_data_dir / "cellpainting" / "images").glob("*/*.tiff"))
    assert len(files) == 6
    raw = tifffile.imread(files[0])
    sample = ImageReader().read(str(files[0]))
    assert sample.data.shape == (1, 1080, 1080) and sample.meta["dtype"] == "uint16"
    assert sample.data.max().item() == pytest.approx(raw.max() / 65535.0)
    field = ImageReader(size=(128, 128)).read({f.name[13:16]: str(f) for f in files}, record_id="r03c03f03")
    assert field.data.shape == (6, 128, 128)
    assert field.meta["channels"] == ["ch1", "ch2", "ch3", "ch4", "ch5", "ch6"]
    assert field.meta["source"] == [str(f) for f in files]
