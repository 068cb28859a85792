"""The disk cache of compiled code (``graphc.targets.cache``): hits and misses, damaged
entries, least-recently-used eviction, where it lives, ``python -m graphc cache``, and
atomic writes under concurrent writers; the cpu backend's object code per kernel (a kernel
shared by programs compiles once, what its key covers, parallel compiles).  The backends'
other uses of it are tested with them (``test_cpu_render.py``, ``test_cuda.py``)."""
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import graphc
from graphc import dtypes
from graphc.codegen import loops as L
from graphc.targets import cache
from graphc.targets.cpu import compile_program, render, runtime, threads

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY_A, KEY_B, KEY_C, KEY_D = (cache.key(name) for name in "abcd")


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A cache folder of the test's own."""
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("GRAPHC_CACHE_SIZE", raising=False)
    return tmp_path


def entry_names(folder) -> list:
    return sorted(p.name for p in folder.iterdir())


def test_the_test_suite_has_a_cache_of_its_own(tmp_path_factory):
    base = str(tmp_path_factory.getbasetemp())
    assert os.environ["GRAPHC_CACHE_DIR"].startswith(base)


def test_keys_depend_on_every_part_and_on_graphc_version(monkeypatch):
    assert cache.key("ir", "sm_80") == cache.key("ir", "sm_80")
    assert len({cache.key("ir", "sm_80"), cache.key("ir", "sm_90"), cache.key("ir2", "sm_80"),
                cache.key("ir", "sm_80", "")}) == 4
    before = cache.key("ir")
    monkeypatch.setattr(cache, "__version__", cache.__version__ + ".post1")
    assert cache.key("ir") != before


def test_miss_store_then_hit(folder):
    assert cache.load(KEY_A, "o") is None
    assert cache.store(KEY_A, "o", b"object code")
    assert cache.load(KEY_A, "o") == b"object code"
    assert cache.load(KEY_A, "so") is None and cache.load(KEY_B, "o") is None
    assert entry_names(folder) == [f"{KEY_A}.o"]


DAMAGES = {
    "flip": lambda data: data[:-1] + b"y",
    "truncate": lambda data: data[:-1],
    "header_only": lambda data: data[:-100],
    "garbage": lambda data: b"\xff" * len(data),
    "empty": lambda data: b"",
    "other_key": lambda data: data.replace(KEY_A.encode(), KEY_B.encode()),
    "header_without_newlines": lambda data: data.replace(b"\n", b" "),
    "short_checksum": lambda data: data.replace(data[len(cache._MAGIC) + 65:cache._HEADER],
                                                b"0" * 10 + b"\n"),
    "other_version": lambda data: data.replace(b"graphc-cache-1", b"graphc-cache-2"),
    "magic_only": lambda data: cache._MAGIC,
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_entry_is_a_miss_and_is_rewritten(folder, damage):
    cache.store(KEY_A, "o", b"x" * 100)
    path = folder / f"{KEY_A}.o"
    data = path.read_bytes()
    path.write_bytes(DAMAGES[damage](data))
    assert cache.load(KEY_A, "o") is None
    assert cache.store(KEY_A, "o", b"x" * 100)
    assert path.read_bytes() == data and cache.load(KEY_A, "o") == b"x" * 100


def test_a_folder_in_place_of_an_entry_is_replaced(folder):
    (folder / f"{KEY_A}.o").mkdir()
    (folder / f"{KEY_A}.o" / "inside").write_bytes(b"junk")
    assert cache.load(KEY_A, "o") is None
    assert cache.store(KEY_A, "o", b"code")
    assert cache.load(KEY_A, "o") == b"code"
    assert entry_names(folder) == [f"{KEY_A}.o"]     # no temporary file left behind


def test_an_unwritable_cache_is_skipped(folder):
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    folder.chmod(0o500)
    try:
        assert not cache.store(KEY_A, "o", b"code")
        assert cache.load(KEY_A, "o") is None
        assert entry_names(folder) == []
    finally:
        folder.chmod(0o700)


def test_the_folder_is_created_private(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "new" / "cache"))
    assert cache.store(KEY_A, "o", b"code")
    assert (tmp_path / "new" / "cache").stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("mode", [0o770, 0o707, 0o777, 0o1777])
def test_a_folder_others_may_write_is_refused_with_one_warning(folder, mode):
    folder.chmod(mode)
    with pytest.warns(RuntimeWarning, match=f"{folder}.*may be written by its group or by "
                                            f"others \\(mode {mode:04o}\\)"):
        assert not cache.store(KEY_A, "o", b"code")
    with warnings.catch_warnings():
        warnings.simplefilter("error")               # said once, not on every compile
        assert cache.load(KEY_A, "o") is None and not cache.store(KEY_A, "o", b"code")
    assert entry_names(folder) == []
    folder.chmod(0o700)                              # fixed: used again
    assert cache.store(KEY_A, "o", b"code") and cache.load(KEY_A, "o") == b"code"


def test_a_folder_of_another_user_is_refused(folder, monkeypatch):
    monkeypatch.setattr(os, "getuid", lambda: folder.stat().st_uid + 1)
    with pytest.warns(RuntimeWarning, match="belongs to another user"):
        assert not cache.store(KEY_A, "o", b"code")
    assert cache.load(KEY_A, "o") is None and entry_names(folder) == []


def test_a_file_as_the_folder_is_refused(tmp_path, monkeypatch):
    (tmp_path / "file").write_bytes(b"")
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "file"))
    with pytest.warns(RuntimeWarning, match="compiling without the disk cache"):
        assert not cache.store(KEY_A, "o", b"code")


def test_compiling_goes_on_in_a_refused_folder(folder):
    folder.chmod(0o777)
    with pytest.warns(RuntimeWarning, match="compiling without the disk cache"):
        f = graphc.compile(lambda x: x * 3 + 1, backend="cpu")
        out = f(graphc.tensor([1.0, 2.0]))
    assert out.tolist() == [4.0, 7.0] and entry_names(folder) == []


@pytest.mark.parametrize("damage", sorted(DAMAGES) + ["folder"])
def test_the_cpu_backend_rebuilds_a_damaged_entry(folder, damage):
    """Every later compile works, and the first one after the damage repairs the entries
    (the object code of the program's entry module and its kernel's, its rendering)."""
    def run():
        return graphc.compile(lambda x: x * 5 - 2, backend="cpu")(graphc.tensor([1.0]))
    assert run().tolist() == [3.0]
    paths = sorted(folder.iterdir())
    assert sorted(path.suffix for path in paths) == [".ll", ".o", ".o"]
    data = [path.read_bytes() for path in paths]
    for path, intact in zip(paths, data):
        path.unlink()
        if damage == "folder":
            path.mkdir()
        else:
            path.write_bytes(DAMAGES[damage](intact))
    for _ in range(2):
        assert run().tolist() == [3.0]
    assert [path.read_bytes() for path in paths] == data


def test_least_recently_used_entries_are_evicted_first(folder, monkeypatch):
    payload = b"p" * 1000
    for age, entry_key in enumerate([KEY_A, KEY_B, KEY_C]):
        cache.store(entry_key, "o", payload)
        os.utime(folder / f"{entry_key}.o", ns=(10**18 + age * 10**9,) * 2)  # A oldest
    entry_size = os.path.getsize(folder / f"{KEY_A}.o")
    assert cache.load(KEY_A, "o") == payload              # a hit: A is now the newest
    monkeypatch.setenv("GRAPHC_CACHE_SIZE", str(3 * entry_size))
    cache.store(KEY_D, "o", payload)                      # 4 entries: one must go
    assert entry_names(folder) == sorted(f"{k}.o" for k in (KEY_A, KEY_C, KEY_D))
    monkeypatch.setenv("GRAPHC_CACHE_SIZE", str(entry_size))
    cache.store(KEY_B, "o", payload)                      # room for the newest alone
    assert entry_names(folder) == [f"{KEY_B}.o"]


def test_eviction_leaves_other_files_alone(folder, monkeypatch):
    (folder / "notes.txt").write_bytes(b"n" * 5000)
    monkeypatch.setenv("GRAPHC_CACHE_SIZE", "2K")
    cache.store(KEY_A, "o", b"a" * 1000)
    assert entry_names(folder) == sorted([f"{KEY_A}.o", "notes.txt"])


@pytest.mark.parametrize("text, size", [("", 1 << 30), ("1048576", 1 << 20), ("500M", 500 << 20),
                                        ("2G", 2 << 30), ("64k", 64 << 10), ("1GiB", 1 << 30),
                                        (" 3 MB ", 3 << 20)])
def test_size_limit_from_the_environment(monkeypatch, text, size):
    monkeypatch.setenv("GRAPHC_CACHE_SIZE", text)
    assert cache.size_limit() == size


@pytest.mark.parametrize("text", ["big", "1.5G", "-1", "10T"])
def test_a_malformed_size_limit_is_an_error(monkeypatch, text):
    monkeypatch.setenv("GRAPHC_CACHE_SIZE", text)
    with pytest.raises(ValueError, match="GRAPHC_CACHE_SIZE"):
        cache.size_limit()


@pytest.mark.skipif(sys.platform != "linux", reason="XDG_CACHE_HOME is Linux's convention")
def test_default_location_follows_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.delenv("GRAPHC_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.directory() == str(tmp_path / "xdg" / "graphc")
    cache.store(KEY_A, "o", b"code")
    assert [p.name for p in (tmp_path / "xdg" / "graphc").iterdir()] == [f"{KEY_A}.o"]
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.directory() == str(tmp_path / "home" / ".cache" / "graphc")


def test_graphc_cache_dir_overrides_and_empty_turns_the_cache_off(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "mine"))
    assert cache.directory() == str(tmp_path / "mine")
    monkeypatch.setenv("GRAPHC_CACHE_DIR", "")
    monkeypatch.chdir(tmp_path)
    assert cache.directory() is None and not cache.store(KEY_A, "o", b"code")
    assert cache.load(KEY_A, "o") is None and os.listdir(tmp_path) == []
    assert cache.info().directory is None and cache.clear() == 0


def graphc_cli(folder, *args, **env):
    environment = dict(os.environ, GRAPHC_CACHE_DIR=str(folder), PYTHONPATH=REPO, **env)
    return subprocess.run([sys.executable, "-m", "graphc", "cache", *args], env=environment,
                          capture_output=True, text=True, timeout=60)


def test_cache_info_and_clear_commands(folder):
    cache.store(KEY_A, "o", b"a" * 2000)
    cache.store(KEY_B, "cubin", b"b" * 3000)
    (folder / f"{KEY_C}.o.123.456.tmp").write_bytes(b"half an entry")
    (folder / "notes.txt").write_text("not the cache's")
    total = sum(os.path.getsize(folder / f) for f in (f"{KEY_A}.o", f"{KEY_B}.cubin"))
    info = graphc_cli(folder, "info", GRAPHC_CACHE_SIZE="10M")
    assert info.returncode == 0, info.stderr
    assert info.stdout.splitlines() == [f"cache: {folder}", "entries: 2",
                                        f"size: {total / 1024:.1f} KiB ({total} bytes)",
                                        "limit: 10.0 MiB (10485760 bytes)"]
    cleared = graphc_cli(folder, "clear")
    assert cleared.returncode == 0, cleared.stderr
    assert cleared.stdout == f"removed 2 entries from {folder}\n"
    assert entry_names(folder) == ["notes.txt"]
    assert "entries: 0" in graphc_cli(folder, "info").stdout


def test_cache_commands_when_off_or_misconfigured(tmp_path):
    off = graphc_cli("", "clear")
    assert off.returncode == 0 and off.stdout == "cache: off (GRAPHC_CACHE_DIR is set empty)\n"
    bad = graphc_cli(tmp_path, "info", GRAPHC_CACHE_SIZE="lots")
    assert bad.returncode == 2 and "GRAPHC_CACHE_SIZE='lots'" in bad.stderr
    assert graphc_cli(tmp_path, "prune").returncode == 2


WRITER = textwrap.dedent("""\
    import sys
    from graphc.targets import cache
    key, rounds = sys.argv[1], int(sys.argv[2])
    for _ in range(rounds):
        cache.store(key, "so", bytes(range(256)) * 16384)
    """)


def test_concurrent_writers_of_one_entry_never_expose_half_of_it(folder):
    """Two processes rewrite one 4 MiB entry again and again while this one reads it:
    every read finds the whole entry (a write in place would be seen half done)."""
    payload = bytes(range(256)) * 16384
    cache.store(KEY_A, "so", payload)
    path = folder / f"{KEY_A}.so"
    whole = path.stat().st_size
    env = dict(os.environ, PYTHONPATH=REPO)
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, KEY_A, "40"], env=env)
               for _ in range(2)]
    reads = 0
    while any(w.poll() is None for w in writers) or reads < 20:
        assert cache.load(KEY_A, "so") == payload
        assert path.stat().st_size == whole
        reads += 1
    assert [w.wait() for w in writers] == [0, 0]
    assert entry_names(folder) == [f"{KEY_A}.so"]          # no temporary file left behind


# ---- the cpu backend's object code per kernel --------------------------------------------------
def exp_kernel(src, dst, n=64, op="exp"):
    """dst[p] = op(src[p]) for p < n."""
    p = L.Var("p")
    return L.LoopKernel(f"{op}_{dst}", (("p", n),), [L.Store((), dst, p, L.Op(
        op, (L.Load(src, p, dtypes.float32),), dtypes.float32))], [src], [dst])


def loop_program(kernels, inputs, outputs, temps=(), n=64):
    """A program over float32 buffers of ``n`` elements with the given names."""
    buffers = {}
    for kind, names in (("input", inputs), ("output", outputs), ("temp", temps)):
        for name in names:
            buffers[name] = L.BufferInfo(name, dtypes.float32, n, kind)
    p = L.Program("test", buffers, kernels, list(inputs), list(outputs), {})
    p.arena, p.arena_sizes = {t: i * n for i, t in enumerate(temps)}, {"float32": len(temps) * n}
    return p


def compiled_modules(monkeypatch) -> list:
    """The IR text of every module the cpu backend compiles from now on (in this
    process: compiles stay serial for programs this small)."""
    texts = []
    original = runtime.compile_object
    monkeypatch.setattr(runtime, "compile_object",
                        lambda text, level: texts.append(text) or original(text, level))
    return texts


def test_a_kernel_shared_by_two_programs_compiles_once(folder, monkeypatch):
    x = np.linspace(-2, 2, 64).astype(np.float32)
    texts = compiled_modules(monkeypatch)
    first = loop_program([exp_kernel("x", "y")], ["x"], ["y"])
    y, = compile_program(first)([x])
    assert len(texts) == 2                                  # its entry and its kernel
    # The same kernel on buffers of other names, at another place, after another kernel:
    second = loop_program([exp_kernel("a", "t"), exp_kernel("t", "b")], ["a"], ["b"], ["t"])
    shared, = render.render_program(first).kernels
    renders = []
    original = render.render_kernel
    monkeypatch.setattr(render, "render_kernel", lambda *a: renders.append(1) or original(*a))
    assert render.render_program(second).kernels == (shared,)   # one module, used twice,
    assert len(renders) == 1                                    # rendered once
    b, = compile_program(second)([x])
    assert len(texts) == 3 and shared.text not in texts[2:]    # only the second's entry
    np.testing.assert_allclose(y, np.exp(x), rtol=1e-6)
    np.testing.assert_allclose(b, np.exp(np.exp(x)), rtol=1e-6)


def test_kernel_identity_ignores_names_only():
    scopes = {name: name for name in "abcxy"}
    same = [exp_kernel("x", "y"), exp_kernel("a", "b")]
    other = [exp_kernel("x", "y", op="neg"), exp_kernel("x", "y", n=32),
             L.LoopKernel("two", (("p", 64),), [L.Store((), "y", L.Var("p"), L.Op(
                 "add", (L.Load("x", L.Var("p"), dtypes.float32),
                         L.Load("c", L.Var("p"), dtypes.float32)), dtypes.float32))],
                          ["x", "c"], ["y"])]
    identities = [render.kernel_identity(k, scopes) for k in same + other]
    assert identities[0] == identities[1] and len(set(identities)) == 4


def test_object_cache_key_covers_module_level_llvm_and_host(monkeypatch):
    text = render.render_program(loop_program([exp_kernel("x", "y")], ["x"], ["y"])).entry
    keys = {runtime.cache_key(text, 1), runtime.cache_key(text, 2),
            runtime.cache_key(text + "\n", 1)}
    monkeypatch.setattr(runtime.llvmlite, "__version__", "0.0.0")
    keys.add(runtime.cache_key(text, 1))
    monkeypatch.setattr(runtime.llvm, "llvm_version_info", (1, 0, 0))
    keys.add(runtime.cache_key(text, 1))
    monkeypatch.setattr(runtime.llvm, "get_host_cpu_name", lambda: "another-cpu")
    keys.add(runtime.cache_key(text, 1))
    monkeypatch.setattr(render, "host_features", lambda: "+sse2")
    keys.add(runtime.cache_key(text, 1))
    assert len(keys) == 7


def test_a_rendering_is_reused_only_by_the_same_graphc_and_settings(folder, monkeypatch):
    renders = []
    original = render.render_program
    monkeypatch.setattr(render, "render_program",
                        lambda program: renders.append(1) or original(program))
    x = np.ones(64, np.float32)

    def compile_and_run():
        program = loop_program([exp_kernel("x", "y")], ["x"], ["y"])
        np.testing.assert_allclose(compile_program(program)([x])[0], np.exp(x), rtol=1e-6)
    compile_and_run()
    compile_and_run()
    assert len(renders) == 1
    monkeypatch.setattr(threads, "MIN_WORK_PER_THREAD", {"loops": 1, "matmul": 1})
    compile_and_run()
    monkeypatch.setattr(runtime, "_source_digest", lambda: "graphc's source, edited")
    compile_and_run()
    assert len(renders) == 3


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two usable cores")
def test_modules_compile_in_worker_processes(folder, monkeypatch, tmp_path):
    """Past PARALLEL_COMPILE_BYTES, modules compile in forked processes, and the program
    they make computes the same."""
    log = tmp_path / "pids"
    original = runtime.compile_object

    def logged(text, level):
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")
        return original(text, level)
    monkeypatch.setattr(runtime, "compile_object", logged)
    monkeypatch.setattr(runtime, "PARALLEL_COMPILE_BYTES", 0)
    program = loop_program([exp_kernel("x", "t"), exp_kernel("t", "y", op="neg")], ["x"], ["y"],
                           ["t"])
    x = np.linspace(-1, 1, 64).astype(np.float32)
    y, = compile_program(program)([x])
    pids = log.read_text().split()
    assert len(pids) == 3 and str(os.getpid()) not in pids
    np.testing.assert_allclose(y, -np.exp(x), rtol=1e-6)
