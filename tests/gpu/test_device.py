"""resolve_device on this machine: names, availability errors, helpers (no GPU needed)."""

from __future__ import annotations

import platform

import pytest
import torch
from torch import nn

from prunekit.device import cpu_name, describe_device, module_device, resolve_device, synchronize
from prunekit.errors import ConfigError

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")


@pytest.mark.parametrize("name", [None, "auto", " AUTO "])
def test_auto_prefers_cuda_when_present(name):
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(name).type == expected


@pytest.mark.parametrize("name", ["cpu", "CPU", torch.device("cpu")])
def test_cpu_is_always_available(name):
    assert resolve_device(name) == torch.device("cpu")


@pytest.mark.parametrize("name", ["gpu", "cuda:x", ""])
def test_unknown_names_list_the_choices(name):
    with pytest.raises(ConfigError, match="unknown device .*auto, cpu, cuda, cuda:N or mps"):
        resolve_device(name)


def test_unsupported_device_types_are_refused():
    with pytest.raises(ConfigError, match="'meta' is not supported"):
        resolve_device("meta")


@no_cuda
@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_cuda_without_a_gpu_says_to_use_the_cpu(name):
    with pytest.raises(ConfigError, match=r"requested but .*; use --device cpu$") as err:
        resolve_device(name)
    assert "\n" not in str(err.value)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA to count devices")
def test_a_missing_cuda_index_names_the_valid_range():
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="checks the no-MPS message")
def test_mps_without_apple_gpu_is_refused():
    with pytest.raises(ConfigError, match="'mps' is not available"):
        resolve_device("mps")


def test_module_device_and_synchronize_on_the_cpu():
    assert module_device(nn.Linear(2, 2)) == torch.device("cpu")
    assert module_device(nn.Sequential()) == torch.device("cpu")  # nothing to ask
    synchronize(torch.device("cpu"))  # a no-op, but must not fail


def test_describe_device_names_the_gpu():
    assert describe_device(torch.device("cpu")) == "cpu"
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        assert describe_device(torch.device("cuda")) == f"cuda:0 ({name})"
        assert describe_device(torch.device("cuda:0")) == f"cuda:0 ({name})"


def test_cpu_name_reads_the_model_name_and_falls_back_to_platform(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9R14\n")
    assert cpu_name(cpuinfo) == "AMD EPYC 9R14"
    fallback = cpu_name(tmp_path / "missing")  # macOS, Windows: no /proc/cpuinfo
    assert fallback == (platform.processor() or platform.machine()) and fallback
    cpuinfo.write_text("processor\t: 0\nmodel name\t: \n")  # some VMs leave it empty
    assert cpu_name(cpuinfo) == fallback
