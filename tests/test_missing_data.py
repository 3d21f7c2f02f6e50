"""Data a run needs but cannot find: one line with what to get and where it goes, and no folder left behind.
Nothing here touches the network: downloads are off, or torchvision's download is made to fail."""

import socket
import sys
import threading
from urllib.error import URLError

import pytest
import torchvision.datasets.cifar
import torchvision.datasets.mnist
from omegaconf import OmegaConf

from conftest import compose_config, error_line, run_command
from lesam.core.errors import UserError
from lesam.data import build_data, datasets


def test_the_demo_without_its_data_names_the_package_and_the_download(tmp_path):
    """`make demo` on a machine without the Debian package, and no download."""
    result = run_command(
        [
            sys.executable,
            "train.py",
            "experiment=demo",
            f"dataset.package_root={tmp_path / 'no-package'}",
            f"dataset.root={tmp_path / 'data'}",
            "dataset.download=false",
            f"output_root={tmp_path / 'out'}",
        ]
    )
    line = error_line(result)
    for words in ("dataset-fashion-mnist", f"'{tmp_path / 'data' / 'FashionMNIST' / 'raw'}' must hold", "ubyte"):
        assert words in line, line
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    "overrides,words",
    [
        (["dataset=cifar10", "dataset.download=false"], ("batches-py' must hold data_batch_1", "cifar-10-python.tar")),
        (["dataset=cifar100_lt", "dataset.download=false"], ("python' must hold train, test and meta", "100-python")),
        (["dataset=imagenet"], ("train/<class>/<image> and val/<class>/<image>", "image-net.org")),
        (["dataset=pacs"], ("<domain>/<class>/<image>", "domainbed.scripts.download")),
    ],
)
def test_missing_data_says_what_to_get_and_where(tmp_path, overrides, words):
    root = tmp_path / "nowhere" / "data"
    cfg = compose_config([*overrides, f"dataset.root={root}"])
    with pytest.raises(UserError) as error:
        build_data(cfg.dataset)
    assert all(w in str(error.value) for w in words), error.value
    assert "\n" not in str(error.value)
    assert not (tmp_path / "nowhere").exists()


def fashion_mnist_download(tmp_path):
    """A Fashion-MNIST config that downloads into tmp_path/data/fm (the Debian package's folder is empty)."""
    return OmegaConf.create(
        {
            "name": "fashion_mnist",
            "root": str(tmp_path / "data" / "fm"),
            "download": True,
            "package_root": str(tmp_path / "no-package"),
            "num_classes": 10,
        }
    )


def test_a_failed_download_leaves_no_folder(tmp_path, monkeypatch):
    def offline(url, *args, **kwargs):
        raise URLError("no network here")

    monkeypatch.setattr(torchvision.datasets.mnist, "download_and_extract_archive", offline)
    cfg = fashion_mnist_download(tmp_path)
    with pytest.raises(UserError) as error:
        build_data(cfg)
    message = str(error.value)
    assert message.startswith("could not download fashion_mnist from http") and "no network here" in message
    assert "dataset-fashion-mnist" in message and "\n" not in message
    assert not (tmp_path / "data").exists()  # torchvision made data/fm/FashionMNIST/raw before it failed


@pytest.mark.parametrize("download", [False, True])
def test_a_cifar_file_that_fails_its_checksum_is_named(tmp_path, monkeypatch, download):
    def offline(url, *args, **kwargs):
        raise URLError("no network here")

    monkeypatch.setattr(torchvision.datasets.cifar, "download_and_extract_archive", offline)
    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    (folder / "data_batch_2").write_bytes(b"not the original bytes")
    cfg = compose_config(["dataset=cifar10", f"dataset.root={tmp_path / 'data'}", f"dataset.download={download}"])
    with pytest.raises(UserError) as error:
        build_data(cfg.dataset)
    message = str(error.value)
    assert message.startswith(f"'{folder / 'data_batch_2'}' is not the original cifar10 file"), message
    assert "MD5 checksum" in message and "delete it" in message and "\n" not in message
    assert ("no network here" in message) == download


def test_a_stalled_download_times_out_with_one_line(tmp_path, monkeypatch):
    """A server that takes the connection and never answers: the download gives up, naming what to get and where."""
    server = socket.create_server(("127.0.0.1", 0))  # the kernel accepts connections; nobody answers them
    ends_anyway = threading.Timer(20, server.close)  # without a timeout, a reset connection ends the wait instead
    ends_anyway.start()
    monkeypatch.setattr(datasets, "DOWNLOAD_TIMEOUT", 0.5)
    monkeypatch.setattr(torchvision.datasets.FashionMNIST, "mirrors", [f"http://127.0.0.1:{server.getsockname()[1]}/"])
    try:
        with pytest.raises(UserError) as error:
            build_data(fashion_mnist_download(tmp_path))
    finally:
        ends_anyway.cancel()
        server.close()
    message = str(error.value)
    assert message.startswith("could not download fashion_mnist") and "sent nothing for 0.5 s" in message, message
    folder = tmp_path / "data" / "fm" / "FashionMNIST" / "raw"
    assert all(words in message for words in (f"'{folder}'", "train-images-idx3-ubyte", "dataset-fashion-mnist"))
    assert "\n" not in message and not (tmp_path / "data").exists()
    assert socket.getdefaulttimeout() is None  # the process's other sockets keep waiting as they did
