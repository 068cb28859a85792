"""The table of which PyTorch features graphc has: ``docs/support.md``, generated.

The checklist is PyTorch's own public API, read from the installed ``torch`` (a test-only
dependency): the modules of ``torch.nn``, the functions of ``torch.nn.functional``,
``torch.nn.init`` and ``torch``, the methods of ``torch.Tensor``, the optimizers and
schedulers, ``torch.utils.data``, the dtypes and the device namespaces.  Each name is
*supported* when graphc has it at the same path, *refused* when graphc registers it in
``graphc.unsupported`` (it raises ``NotImplementedError`` saying why and what to use
instead), and *missing* otherwise.

    python -m graphc.testing.support              # print the summary
    python -m graphc.testing.support --write docs/support.md
"""
from __future__ import annotations

import argparse
import inspect
import sys

import graphc
from graphc.unsupported import REFUSED


def _public(obj, keep) -> list[str]:
    return sorted(n for n in dir(obj) if not n.startswith("_") and keep(n, getattr(obj, n)))


def checklist(torch) -> list[tuple[str, str, list[str]]]:
    """(section, PyTorch path, names) from the installed PyTorch."""
    import torch.nn.functional as F
    import torch.utils.data

    def is_module_class(n, v):
        return inspect.isclass(v) and issubclass(v, torch.nn.Module)

    def is_function(n, v):
        return callable(v) and not inspect.isclass(v) and not inspect.ismodule(v) and \
            getattr(v, "__module__", "torch") not in ("typing", "builtins")

    def is_class(base):
        return lambda n, v: inspect.isclass(v) and issubclass(v, base) and v is not base

    lr = torch.optim.lr_scheduler
    return [
        ("nn modules", "nn", _public(torch.nn, is_module_class)),
        ("nn.functional", "nn.functional", _public(F, is_function)),
        ("nn.init", "nn.init", _public(torch.nn.init, lambda n, v: inspect.isfunction(v) and
                                       v.__module__ == "torch.nn.init")),
        ("optimizers", "optim", _public(torch.optim, is_class(torch.optim.Optimizer))),
        ("lr schedulers", "optim.lr_scheduler",
         _public(lr, lambda n, v: inspect.isclass(v) and v.__module__ == lr.__name__ and
                 n[0].isupper())),
        ("torch functions", "", _public(torch, lambda n, v: is_function(n, v) and
                                        not n.startswith("is_") or n in ("is_tensor",
                                                                         "is_grad_enabled",
                                                                         "is_floating_point",
                                                                         "is_nonzero",
                                                                         "is_complex"))),
        ("Tensor methods", "Tensor", _public(torch.Tensor, lambda n, v: callable(v))),
        ("dtypes", "", _public(torch, lambda n, v: isinstance(v, torch.dtype))),
        ("utils.data", "utils.data", sorted(n for n in torch.utils.data.__all__
                                            if not n.startswith("_"))),
        ("cuda", "cuda", _public(torch.cuda, lambda n, v: inspect.isfunction(v) and
                                 v.__module__.startswith("torch.cuda") and n[0].islower())),
        ("backends", "backends", [n for n in ("cpu", "cuda", "cudnn", "mkl", "mkldnn", "mps",
                                              "openmp", "opt_einsum")]),
        ("autograd", "autograd", _public(torch.autograd, lambda n, v: callable(v) and
                                         getattr(v, "__module__", "").startswith(
                                             "torch.autograd"))),
    ]


def status(path: str, name: str) -> tuple[str, str]:
    """("supported" | "refused" | "missing", why-and-instead for refusals)."""
    full = "torch." + (f"{path}.{name}" if path else name)
    if full in REFUSED:
        why, instead = REFUSED[full]
        return "refused", f"{why}; instead: {instead}"
    obj = graphc
    for part in (path.split(".") if path else []) + [name]:
        if not hasattr(obj, part):
            return "missing", ""
        obj = getattr(obj, part)
    return "supported", ""


def table(torch) -> list[dict]:
    try:
        import graphc.utils.tensorboard  # noqa: F401  (optional: registers its refusals)
    except ImportError:
        pass
    rows = []
    for section, path, names in checklist(torch):
        for name in names:
            state, note = status(path, name)
            rows.append({"section": section, "path": path, "name": name, "status": state,
                         "note": note})
    return rows


def summary(rows) -> dict:
    """section -> {"supported": n, "refused": n, "missing": n}, plus "all"."""
    out: dict = {}
    for r in rows + [dict(r, section="all") for r in rows]:
        counts = out.setdefault(r["section"], {"supported": 0, "refused": 0, "missing": 0})
        counts[r["status"]] += 1
    return out


def markdown(rows, torch_version: str) -> str:
    counts = summary(rows)
    lines = ["# What graphc supports of PyTorch's API", "",
             "Generated by `python -m graphc.testing.support --write docs/support.md` from "
             f"PyTorch {torch_version}'s public names and graphc's code; do not edit by hand. "
             "*Supported*: graphc has the name at the same path (`torch.X` is `graphc.X`). "
             "*Refused*: graphc raises `NotImplementedError` saying why and what to use "
             "instead (registered in `graphc/unsupported.py`). *Missing*: not there.", "",
             "| section | supported | refused | missing | total |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for section, c in counts.items():
        label = f"**{section}**" if section == "all" else section
        lines.append(f"| {label} | {c['supported']} | {c['refused']} | {c['missing']} | "
                     f"{sum(c.values())} |")
    if REFUSED:
        lines += ["", "## Refused", "", "| name | why | instead |", "| --- | --- | --- |"]
        lines += [f"| `{name}` | {why} | {instead} |"
                  for name, (why, instead) in sorted(REFUSED.items())]
    for section in dict.fromkeys(r["section"] for r in rows):
        mine = [r for r in rows if r["section"] == section]
        lines += ["", f"## {section}", ""]
        for state in ("supported", "missing"):
            names = [f"`{r['name']}`" for r in mine if r["status"] == state]
            if names:
                lines += [f"**{state}** ({len(names)}): " + ", ".join(names), ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m graphc.testing.support",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", metavar="FILE", help="write the markdown table to FILE")
    args = parser.parse_args(argv)
    import torch
    rows = table(torch)
    if args.write:
        with open(args.write, "w") as f:
            f.write(markdown(rows, torch.__version__.split("+")[0]))
    for section, c in summary(rows).items():
        print(f"{section:16s} supported {c['supported']:5d}  refused {c['refused']:4d}  "
              f"missing {c['missing']:5d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
