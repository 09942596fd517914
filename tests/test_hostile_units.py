"""The guards behind tests/test_hostile_files.py, one by one, and that they let honest files through.

Fast, in-process: each test builds its files in tmp_path; nothing here can block (FIFOs are only stat-ed).
"""

from __future__ import annotations

import errno
import math
import os
import stat

import h5py
import pytest

from slipsnn.exporters.netx import read_netx, read_proven_netx, write_netx
from slipsnn.toolchain.costs.profiles import load_profile
from slipsnn.toolchain.errors import FormatError, ProfileError, SlipsnnError
from slipsnn.toolchain.files import (FileCheckError, atomic_write, atomic_write_json, check_input, check_output,
                                     read_bytes)
from factories import hand_net, tiny_conv_net


def test_check_input_takes_regular_files_within_the_limit(tmp_path) -> None:
    f = tmp_path / "a.toml"
    f.write_bytes(b"x" * 10)
    assert check_input(f, 10) == 10
    assert read_bytes(f, 10) == b"x" * 10
    with pytest.raises(FileCheckError, match=r"a\.toml: 10 bytes, larger than the 9 bytes a file may have"):
        check_input(f, 9)
    os.mkfifo(tmp_path / "p")
    with pytest.raises(FileCheckError, match=r"p: is not a file but a FIFO \(named pipe\)"):
        read_bytes(tmp_path / "p", 10)   # would block forever if it were opened
    with pytest.raises(FileCheckError, match=r"zero: is not a file but a character device"):
        read_bytes("/dev/zero", 10)
    with pytest.raises(FileCheckError, match=r"gone: no such file"):
        check_input(tmp_path / "gone", 10)


def test_check_output_refuses_inputs_devices_and_paths_under_files(tmp_path) -> None:
    src = tmp_path / "m.net"
    src.write_bytes(b"net")
    (tmp_path / "sub").mkdir()
    other_spelling = tmp_path / "sub" / ".." / "m.net"
    with pytest.raises(FileCheckError, match=r"is an input of this command"):
        check_output(other_spelling, [src])
    os.link(src, tmp_path / "hard.net")
    with pytest.raises(FileCheckError, match=r"is an input of this command"):
        check_output(tmp_path / "hard.net", [src])
    with pytest.raises(FileCheckError, match=r"m\.net/x\.json: cannot write it, .*m\.net is not a folder"):
        check_output(src / "x.json")
    with pytest.raises(FileCheckError, match=r"is not a file but a character device"):
        check_output("/dev/null")
    with pytest.raises(FileCheckError, match=r"exists and is not a folder"):
        check_output(src, folder=True)
    assert check_output(tmp_path / "new" / "deeper.json", [src]) == tmp_path / "new" / "deeper.json"


def test_atomic_write_never_replaces_a_device_node(tmp_path) -> None:
    node = tmp_path / "null"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.stat("/dev/null").st_rdev)
    except PermissionError:
        os.symlink("/dev/null", node)
    with pytest.raises(FileCheckError, match="slipsnn only replaces regular files"):
        atomic_write_json(node, {"a": 1})
    assert stat.S_ISCHR(os.stat(node).st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["null"]


def test_a_full_disk_names_the_file(tmp_path) -> None:
    def full(tmp) -> None:
        tmp.write_bytes(b"")
        raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(OSError) as err:
        atomic_write(tmp_path / "r.json", full)
    assert err.value.filename == str(tmp_path / "r.json") and err.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


def test_json_is_strict(tmp_path) -> None:
    with pytest.raises(SlipsnnError, match=r"\$\.energy\[1\]\.pj is inf; JSON holds only finite numbers"):
        atomic_write_json(tmp_path / "r.json", {"energy": [{"pj": 1.0}, {"pj": math.inf}]})
    assert not (tmp_path / "r.json").exists()


def _rewrite(path, key: str, **kwargs) -> None:
    with h5py.File(path, "r+") as h:
        data = h[key][()]
        del h[key]
        h.create_dataset(key, data=data, **kwargs)


def test_honest_compression_and_chunking_still_load(tmp_path) -> None:
    path = write_netx(tiny_conv_net(), tmp_path / "m.net")
    _rewrite(path, "layer/3/weight", compression="gzip", chunks=(1, 32))
    _rewrite(path, "layer/1/weight", compression="lzf", shuffle=True)
    net = read_netx(path)
    assert (net.layers[1].synapses[0].weight == tiny_conv_net().layers[1].synapses[0].weight).all()


def test_a_zero_dataset_that_was_written_is_not_mistaken_for_fill_values(tmp_path) -> None:
    net = hand_net()
    path = write_netx(net, tmp_path / "m.net")   # hand_net's biases are all zero, written explicitly
    assert (read_netx(path).layers[0].bias == 0).all()


def test_the_horizon_is_proven_again_on_the_run_path(tmp_path) -> None:
    path = write_netx(tiny_conv_net(), tmp_path / "m.net")   # provable for its 2 steps
    assert read_proven_netx(path).max_timesteps == 2
    with h5py.File(path, "r+") as h:
        h["slipsnn/max_timesteps"][()] = 4096
    assert read_netx(path).max_timesteps == 4096   # the reader alone reports what the file says
    # layer 0 reads the image alone (a constant drive: its bound is one step's); the accumulating output is not
    with pytest.raises(FormatError, match=r"m\.net: slipsnn/max_timesteps = 4096 is not a proven horizon: layer 1 "
                                          r"\('out'\) can overflow its 24-bit membrane within 4096 steps"):
        read_proven_netx(path)


def test_meta_text_with_escape_sequences_is_refused(tmp_path) -> None:
    path = write_netx(hand_net({"arch": "hand\x1b[31m"}), tmp_path / "m.net")
    with pytest.raises(FormatError, match=r"meta\['arch'\] holds the control character '\\x1b'"):
        read_netx(path)


def test_builtin_profiles_pass_the_nesting_scan() -> None:
    for name in ("loihi", "loihi2", "gpu45nm"):
        assert load_profile(name).name == name


def test_profile_strings_and_comments_may_hold_brackets(tmp_path) -> None:
    from importlib import resources
    text = resources.files("slipsnn.hardware_configs").joinpath("loihi2.toml").read_text()
    text = text.replace('[profile]', '# ' + "[" * 100 + '\n[profile]', 1)
    text = text.replace('name = "loihi2"', 'name = "' + "[" * 100 + '"', 1)
    path = tmp_path / "p.toml"
    path.write_text(text)
    assert load_profile(path).name == "[" * 100
    path.write_text("a = " + "{b = " * 40 + "1" + "}" * 40)
    with pytest.raises(ProfileError, match="nested deeper than 32 levels"):
        load_profile(path)
